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
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Document:
    """The file's content with `${VAR}` replaced, and what each variable put in."""

    values: dict[str, Any]
    from_env: dict[str, str]


def _substitute(
    node: Any, env: Mapping[str, str], loc: tuple[int | str, ...], used: dict[str, str]
) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*loc, str(k)), used) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*loc, i), used) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            used[name] = env[name]
            return env[name]
        if default is not None:
            return default
        raise ConfigError([f"{_path(loc)}: environment variable {name} is not set"])

    return _VAR.sub(replace, node)


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


def _parse(text: str) -> Any:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_shape(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def read_document(path: Path, env: Mapping[str, str]) -> Document:
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
    used: dict[str, str] = {}
    values: dict[str, Any] = _substitute(document, env, (), used)
    return Document(values, used)


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


def load(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Find, read and validate the configuration; raise ConfigError naming every problem."""
    env = os.environ if env is None else env
    path = find_config(explicit, env)
    document = read_document(path, env)
    try:
        return Settings(**document.values)
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
