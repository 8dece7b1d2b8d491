"""Where each secret of a loaded configuration came from, for `watcher check`: the YAML
file itself, an environment variable (`${VAR}` in the file, or a `WATCHER_<SECTION>__<KEY>`
override), or a file (`*_file` keys).

Names places only (keys, variables, file paths), never a value: the values are not
even read here, beyond what says whether a key is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from watcher.config import Loaded, Loc

_ABSENT = object()
Keys = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Origin:
    key: str  # the secret, e.g. api.client_secret, channels.ops[0]
    source: str  # where it came from, e.g. "environment variable PA_CLIENT_SECRET"


@dataclass(frozen=True, slots=True)
class _Sources:
    loaded: Loaded
    env: Mapping[str, str]  # the process environment that pydantic-settings read

    def override(self, path: Keys) -> str | None:
        """The WATCHER_ variable that sets `path`: its own, or a section's (as JSON)."""
        names = {name.upper(): name for name in self.env}
        for cut in range(len(path), 0, -1):
            name = names.get("WATCHER_" + "__".join(path[:cut]).upper())
            if name is None:
                continue
            if cut == len(path):
                return f"environment variable {name} (an override)"
            if _lookup(_json(self.env[name]), path[cut:]) is not _ABSENT:
                return f"environment variable {name} (an override, as JSON)"
        return None

    def given(self, path: Keys) -> bool:
        return self.override(path) is not None or self.in_file(path) is not _ABSENT

    def in_file(self, path: Loc) -> Any:
        return _lookup(self.loaded.document.values, path)

    def source(self, path: Keys) -> str:
        """Where the value at `path` came from, when it is given directly (not as a file)."""
        return self.override(path) or self.written(path)

    def written(self, loc: Loc) -> str:
        """The file is named once, above the secrets: "the file" is that one."""
        names = self.loaded.document.variables.get(loc, ())
        if not names:
            return "written in the file"
        set_ = [n for n in names if n in self.loaded.document.from_env]
        unset = [n for n in names if n not in self.loaded.document.from_env]
        parts = [f"environment variable {n} (${{{n}}} in the file)" for n in set_]
        parts += [f"the default of ${{{n}}} in the file ({n} is not set)" for n in unset]
        return ", ".join(parts)

    def secret(self, block: Keys, key: str) -> str:
        """A secret that may be given as itself or as `<key>_file`, in `block`."""
        if self.given((*block, key)):
            return self.source((*block, key))
        where = (*block, f"{key}_file")
        named = self.override(where) or self.written(where)
        return f"read from {self._file_path(where)} ({'.'.join(where)}, {named})"

    def _file_path(self, path: Keys) -> str:
        found = self.in_file(path)
        if found is _ABSENT:  # from an override: its value is a path, not a secret
            found = _lookup_env(self.env, path)
        return str(found)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _lookup(values: Any, path: Loc) -> Any:
    for part in path:
        if isinstance(values, list) and isinstance(part, int):
            if part >= len(values):
                return _ABSENT
            values = values[part]
        elif isinstance(values, dict) and part in values:
            values = values[part]
        else:
            return _ABSENT
    return values


def _lookup_env(env: Mapping[str, str], path: Keys) -> Any:
    names = {name.upper(): name for name in env}
    for cut in range(len(path), 0, -1):
        name = names.get("WATCHER_" + "__".join(path[:cut]).upper())
        if name is not None:
            return env[name] if cut == len(path) else _lookup(_json(env[name]), path[cut:])
    return _ABSENT


def origins(loaded: Loaded, env: Mapping[str, str]) -> list[Origin]:
    """Every secret the settings hold, each with where it came from."""
    sources = _Sources(loaded, env)
    return [*_accounts(sources), *_state_and_server(sources), *_channels(sources)]


_PAIRS = ("client_secret", "access_token")


def _accounts(sources: _Sources) -> Iterator[Origin]:
    settings = sources.loaded.settings
    for name, api in settings.accounts_resolved().items():
        for key in _PAIRS:
            if getattr(api, key) is None:
                continue
            if not settings.accounts:
                yield Origin(f"api.{key}", sources.secret(("api",), key))
                continue
            own = ("accounts", name)
            if sources.given((*own, key)) or sources.given((*own, f"{key}_file")):
                yield Origin(f"accounts.{name}.{key}", sources.secret(own, key))
            else:
                inherited = sources.secret(("api",), key)
                yield Origin(f"accounts.{name}.{key}", f"the api block's: {inherited}")


def _state_and_server(sources: _Sources) -> Iterator[Origin]:
    settings = sources.loaded.settings
    if settings.state.url is not None:
        yield Origin("state.url", sources.source(("state", "url")))
    if settings.server.api_token is not None:
        yield Origin("server.api_token", sources.secret(("server",), "api_token"))


def _channels(sources: _Sources) -> Iterator[Origin]:
    for name, urls in sorted(sources.loaded.settings.channels.items()):
        written = sources.in_file(("channels", name))
        # Every channel URL: each is a secret as a whole (logs.url_secrets), its tokens
        # being wherever its plugin keeps them.
        for index in range(len(urls)):
            loc: Loc = ("channels", name) if isinstance(written, str) else ("channels", name, index)
            source = sources.override(("channels", name)) or sources.written(loc)
            yield Origin(f"channels.{name}[{index}]", source)
