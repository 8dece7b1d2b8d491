"""Finding, reading and validating the configuration file; turning every failure into
one `ConfigError` whose lines name the key path (`rules[1].match.to: ...`).

Never echoes a configured value that could be a secret: messages carry paths and
our own wording, not pydantic's rendering of the input, and a value that came from
`${VAR}` is named by its variable. Reading is bounded: the file's size, how far YAML
aliases may repeat values, how deep the document nests.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from watcher import files
from watcher.logs import MIN_SECRET
from watcher.settings import Settings

DEFAULT_PATHS = (Path("watcher.yaml"), Path("/etc/watcher/watcher.yaml"))
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PREFIXED = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\])*(?:\.[A-Za-z_][\w-]*(?:\[\d+\])*)*): (.+)$")
_KEY_PATH = re.compile(r"[A-Za-z_][\w.\[\]-]*: ")
MAX_FILE_BYTES = 4 * files.MIB
MAX_DEPTH = 50  # a configuration nests about six deep
MAX_REPEATED = 10_000  # values that aliases may add to the document, all aliases together
# libyaml's parser when PyYAML has it: ten times faster on a large file than the pure one.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigError(Exception):
    """Invalid configuration; `str()` is the message for the user, one problem a line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def find_config(explicit: str | None, env: Mapping[str, str]) -> Path:
    """`-c FILE`, else `$WATCHER_CONFIG`, else the default paths; a named file must exist."""
    named = explicit or env.get("WATCHER_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            source = "--config" if explicit else "WATCHER_CONFIG"
            raise ConfigError([f"{source}: {path} does not exist or is not a file"])
        return path
    for path in DEFAULT_PATHS:
        if path.is_file():
            return path
    tried = ", ".join(str(p) for p in DEFAULT_PATHS)
    raise ConfigError(
        [f"no configuration file: pass -c FILE or set WATCHER_CONFIG (tried {tried})"]
    )


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


Loc = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """The file's content with `${VAR}` replaced; what each variable put in; which
    variables each value used, by its path in the file (for `check`'s provenance)."""

    values: dict[str, Any]
    from_env: dict[str, str]
    variables: dict[Loc, tuple[str, ...]] = field(default_factory=dict)


# The sections that commands using only the state never read (`load(offline=True)`).
OFFLINE_SECTIONS = frozenset({"api", "accounts", "channels"})
# What stands in, for those commands, for a channel URL that names an unset variable:
# a URL apprise accepts, that they never send to (.invalid cannot resolve, RFC 2606).
STAND_IN_URL = "json://unset.invalid"


@dataclass(slots=True)
class _Substitution:
    env: Mapping[str, str]
    offline: bool
    used: dict[str, str] = field(default_factory=dict)
    variables: dict[Loc, tuple[str, ...]] = field(default_factory=dict)
    unset: dict[Loc, str] = field(default_factory=dict)  # offline: loc -> a variable unset

    def node(self, node: Any, loc: Loc) -> Any:
        if isinstance(node, dict):
            return {k: self.node(v, (*loc, str(k))) for k, v in node.items()}
        if isinstance(node, list):
            return [self.node(v, (*loc, i)) for i, v in enumerate(node)]
        if not isinstance(node, str):
            return node
        names: list[str] = []

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            names.append(name)
            if name in self.env:
                self.used[name] = self.env[name]
                return self.env[name]
            if default is not None:
                return default
            if self.offline and _standable(loc):
                self.unset.setdefault(loc, name)
                return ""
            raise ConfigError([f"{_path(loc)}: environment variable {name} is not set"])

        text = _VAR.sub(replace, node)
        if names:
            self.variables[loc] = tuple(names)
        return text


def _standable(loc: Loc) -> bool:
    """Whether an offline command may do without the value at `loc`: a key of the api
    block, of an account's block, or a channel's URL."""
    if not loc or loc[0] not in OFFLINE_SECTIONS:
        return False
    depth = {"api": 2, "accounts": 3}.get(str(loc[0]))
    return len(loc) == depth if depth else len(loc) in (2, 3)


def _stand_in(values: dict[str, Any], unset: Mapping[Loc, str]) -> None:
    """For an offline command, each value that names an unset variable replaced by what
    validates and is never used: a channel URL by STAND_IN_URL; a secret file by the
    secret itself; a secret, client_id or realm by text naming the variable; any other
    api key is left out, so that its default applies."""
    for loc, name in unset.items():
        *parents, key = loc
        block: Any = values
        for part in parents:
            block = block[part]
        if loc[0] == "channels":
            block[key] = STAND_IN_URL
        elif isinstance(key, str) and key.endswith("_file"):
            del block[key]
            block[key.removesuffix("_file")] = f"${{{name}}} is not set"
        elif key in _KEPT:
            block[key] = f"${{{name}}} is not set"
        else:
            del block[key]


_KEPT = frozenset({"realm", "client_id", "client_secret", "access_token"})


class _Refused(Exception):
    def __init__(self, problem: str, mark: Any = None) -> None:
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        super().__init__(f"{where} {problem}")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_shape(root: yaml.Node) -> None:
    """Refuses a document graph that aliases make recursive, or expand past MAX_REPEATED
    values (a billion-laughs document is under 1 KB), or that nests past MAX_DEPTH.

    One walk over the composed graph, where an alias is the same node met again: each
    node's expanded size and height are computed once, so the walk is linear in the file,
    however much the aliases would expand.
    """
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            below = _children(node)
            size[key] = min(1 + sum(size[id(c)] for c in below), 2**40)
            height[key] = 1 + max((height[id(c)] for c in below), default=0)
            on_path.discard(key)
            if height[key] > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", node.start_mark)
        elif key in on_path:
            raise _Refused("this alias refers to the collection that contains it", node.start_mark)
        elif key not in size:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    if size[id(root)] - len(size) > MAX_REPEATED:
        raise _Refused(
            f"YAML aliases would repeat more than {MAX_REPEATED} values"
            " (write them out, or use fewer aliases)"
        )


# What YAML may read a mapping's key as: every key of the configuration is a name (a
# merge key, `<<`, stands for the keys it brings).
_NAME_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge")


def _check_keys(root: yaml.Node) -> None:
    """Refuses a key that YAML reads as something other than text, where it stands:
    YAML 1.1 reads `on`, `yes` and `no` as booleans and `404` as a number, which the
    validation would report as "Keys should be strings", naming neither the key nor
    its line. Runs after `_check_shape`, so every alias has an end."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag not in _NAME_TAGS:
                    kind = key.tag.rsplit(":", 1)[-1]
                    raise _Refused(
                        f"the key {key.value} reads as a {kind} in YAML, not a name:"
                        f' quote it ("{key.value}")',
                        key.start_mark,
                    )
        stack.extend(_children(node))


def _parse(text: str) -> Any:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_shape(root)
        _check_keys(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_document(path: Path, env: Mapping[str, str], *, offline: bool = False) -> Document:
    try:
        text = files.read_text(path, MAX_FILE_BYTES)
    except files.FileProblem as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        document = _parse(text)
    except _Refused as exc:
        raise ConfigError([f"{path}:{exc}"]) from None
    except RecursionError:  # the pure-Python composer, without libyaml, recurses per level
        raise ConfigError([f"{path}: nested deeper than {MAX_DEPTH} levels"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}:{where}: {problem}"]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    substitution = _Substitution(env, offline)
    values: dict[str, Any] = substitution.node(document, ())
    _stand_in(values, substitution.unset)
    return Document(values, substitution.used, substitution.variables)


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """Field names (and aliases) valid at `loc`'s parent, for "did you mean" hints."""
    model: type[BaseModel] | None = Settings
    keyed = False  # the part is a key of a mapping (an account's name), not a field
    for part in loc[:-1]:
        if model is None or isinstance(part, int) or keyed:
            keyed = False
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        keyed = getattr(annotation, "__origin__", None) is dict
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(error: Any) -> str:
    loc = tuple(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif error["type"] == "missing":
        message = "required key is missing"
    path = _path(loc)
    prefixed = _PREFIXED.match(message)
    if prefixed:
        inner, message = prefixed.groups()
        path = f"{path}.{inner}" if path else inner
    return f"{path}: {message}" if path else message


def _named(problem: str, from_env: Mapping[str, str]) -> str:
    """The problem with each value that a `${VAR}` put in written as `${VAR}` (the value
    may be a secret in the wrong place); the key path before it is left as it is."""
    prefix = _KEY_PATH.match(problem)
    path, message = (prefix[0], problem[prefix.end() :]) if prefix else ("", problem)
    for name, value in sorted(from_env.items(), key=lambda item: -len(item[1])):
        if len(value) >= MIN_SECRET:
            for form in (value, repr(value)[1:-1]):
                message = message.replace(form, f"${{{name}}}")
    return path + message


@dataclass(frozen=True, slots=True)
class Loaded:
    """The settings, and what they came from: the file and its document."""

    settings: Settings
    path: Path
    chosen_by: str  # how the file was found: "-c", "WATCHER_CONFIG", "default"
    document: Document


def load(
    explicit: str | None = None, env: Mapping[str, str] | None = None, *, offline: bool = False
) -> Settings:
    """Find, read and validate the configuration; raise ConfigError naming every problem.

    `offline`: for the commands that use only the state (status, history, silence, ack,
    retry), which never call the API nor send: an unset `${VAR}` in api, accounts or
    channels is then not an error (`_stand_in`)."""
    return load_from(explicit, env, offline=offline).settings


def load_from(
    explicit: str | None = None, env: Mapping[str, str] | None = None, *, offline: bool = False
) -> Loaded:
    """`load`, with the file it read and the document it validated."""
    env = os.environ if env is None else env
    path = find_config(explicit, env)
    chosen_by = "-c" if explicit else "WATCHER_CONFIG" if env.get("WATCHER_CONFIG") else "default"
    document = read_document(path, env, offline=offline)
    try:
        return Loaded(Settings(**document.values), path, chosen_by, document)
    except ValidationError as exc:
        raise ConfigError([_named(_describe(e), document.from_env) for e in exc.errors()]) from None
    except SettingsError as exc:
        raise ConfigError([_unparsable_override(str(exc))]) from None


def _unparsable_override(message: str) -> str:
    """pydantic-settings' "error parsing value for field "api" from source ...", as the
    variables that could hold it (the section's, or one of its keys'); never the value."""
    field = re.search(r'field "([^"]+)"', message)
    if field is None:
        return "an environment override (WATCHER_...) is not valid JSON"
    prefix = f"WATCHER_{field[1].upper()}"
    names = sorted(
        name
        for name in os.environ
        if name.upper() == prefix or name.upper().startswith(f"{prefix}__")
    )
    return f"{field[1]}: {' or '.join(names) or prefix} is not valid JSON"
