"""Finding, reading and validating the configuration file; turning every failure into
one `ConfigError` whose lines name the key path (`rules[1].match.to: ...`).

Never echoes a configured value that could be a secret: messages carry paths and
our own wording, not pydantic's rendering of the input.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from watcher.settings import Settings

DEFAULT_PATHS = (Path("watcher.yaml"), Path("/etc/watcher/watcher.yaml"))
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PREFIXED = re.compile(r"^([A-Za-z_][\w-]*(?:\[\d+\])*(?:\.[A-Za-z_][\w-]*(?:\[\d+\])*)*): (.+)$")


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


def _substitute(node: Any, env: Mapping[str, str], loc: tuple[int | str, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, env, (*loc, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, env, (*loc, i)) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError([f"{_path(loc)}: environment variable {name} is not set"])

    return _VAR.sub(replace, node)


def read_document(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{path}:{where}: {problem}"]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    result: dict[str, Any] = _substitute(document, env, ())
    return result


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """Field names (and aliases) valid at `loc`'s parent, for "did you mean" hints."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
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


def load(explicit: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Find, read and validate the configuration; raise ConfigError naming every problem."""
    env = os.environ if env is None else env
    path = find_config(explicit, env)
    document = read_document(path, env)
    try:
        return Settings(**document)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None
