"""apprise loads only the plugins that the channels' URL schemes need.

The first URL that apprise is given makes it import all of its ~190 plugin modules and
their libraries (about 11 MB and 0.15 s of CPU), whatever the scheme: a daemon with one
json:// webhook keeps them all for its life. apprise's plugin manager has no way to
load one module (`load_modules` imports every file of a directory), so this module,
and no other, fills apprise's registry itself: it imports the module that declares the
URL's scheme and registers its plugin class with the manager's own `add`. Any doubt
(a scheme not found in the plugins' sources, a plugin that does not register it, a
manager without the internals used here) falls back to apprise's full load, so every
URL that apprise accepts still works. Every apprise object of a channel is made by
`target`, which loads first.
"""

from __future__ import annotations

import importlib
import re
import threading
from functools import cache
from pathlib import Path
from typing import Any

import apprise
import apprise.plugins
from apprise.manager_plugins import NotificationManager
from apprise.utils.parse import parse_urls

# apprise's own reading of a URL's scheme (apprise.utils.parse.GET_SCHEMA_RE).
_SCHEME = re.compile(r"\s*(?P<scheme>[a-z0-9]{1,32})://", re.I)
# A plugin class's schemes, as its source declares them: `protocol = "json"`,
# `secure_protocol = ("msteams", "workflow")` (one level of indentation: class level).
_DECLARED = re.compile(r"^    (?:secure_)?protocol = (\([^)]*\)|\"[^\"]*\"|'[^']*')", re.M)
_QUOTED = re.compile(r"[\"']([a-z0-9]{1,32})[\"']", re.I)
# The entries of apprise's plugin directory that its manager loads (`load_modules`).
_MODULE = re.compile(r"^(?!base|_)[a-z0-9_]+$", re.I)
# The internals of apprise's manager that an empty but loaded registry needs.
_INTERNALS = ("_lock", "_loaded", "_module_map", "_schema_map", "module_filter_re")
_SEED = "watcher.plugins: only the plugins of the schemes used"

_lock = threading.Lock()  # channels are loaded from the event loop's worker threads too


def target(url: str) -> apprise.Apprise:
    """`url` (one or more channel URLs, as apprise splits them) as its own apprise object,
    with the plugins of its schemes loaded first; empty if apprise refuses a URL."""
    load(url)
    destination = apprise.Apprise()
    destination.add(url)
    return destination


def load(url: str) -> None:
    """Make sure apprise's registry knows the scheme of each URL in `url`: its plugin
    alone if that can be found, else every plugin (as apprise would load them)."""
    for one in parse_urls(url):  # type: ignore[no-untyped-call]  # apprise's own split
        match = _SCHEME.match(one)
        if match is not None:  # apprise refuses a URL without one, registry unread
            _load_scheme(match["scheme"].lower())


def _load_scheme(scheme: str) -> None:
    with _lock:
        manager = _manager()
        if manager and (scheme in manager or not _narrowed()):
            return  # known, or apprise has loaded everything it has
        module = declared().get(scheme)
        if module is None or not _register(manager, module) or scheme not in manager:
            _load_everything(manager)


@cache
def declared() -> dict[str, str]:
    """Scheme -> the plugin module that declares it, read from the plugins' sources
    (importing them is what this avoids; a few, such as kodi's, declare theirs in a
    form not read here and are reached through the full load)."""
    root = Path(apprise.plugins.__file__).parent
    found: dict[str, str] = {}
    for entry in sorted(root.iterdir()):
        name = entry.name.removesuffix(".py") if entry.is_file() else entry.name
        if not _MODULE.match(name) or (entry.is_file() and entry.suffix != ".py"):
            continue
        for source in [entry] if entry.is_file() else sorted(entry.rglob("*.py")):
            for declaration in _DECLARED.finditer(source.read_text(encoding="utf-8")):
                for scheme in _QUOTED.findall(declaration[1]):
                    found.setdefault(scheme.lower(), name)
    return found


def _narrowed() -> bool:
    """Whether the registry holds only what `load` put there."""
    return _SEED in getattr(_manager(), "_loaded", ())


def _manager() -> Any:
    """apprise's one instance of its manager (a singleton), the registry that every
    `Apprise` object reads; apprise gives it no types."""
    return NotificationManager()  # type: ignore[no-untyped-call]


def _register(manager: Any, module_name: str) -> bool:
    """Import one plugin module and add its plugin class, as `load_modules` would (the
    first class whose name the manager accepts and that has an `app_id`)."""
    if not all(hasattr(manager, name) for name in _INTERNALS):
        return False
    try:
        module = importlib.import_module(f"{apprise.plugins.__name__}.{module_name}")
    except ImportError:  # apprise's full load has its own ways with such a module
        return False
    if not manager:  # empty, yet loaded: otherwise `add` would load every plugin first
        with manager._lock:
            manager._module_map, manager._schema_map = {}, {}
            manager._loaded.add(_SEED)
    for name in dir(module):
        plugin = getattr(module, name)
        if manager.module_filter_re.match(name) and hasattr(plugin, "app_id"):
            return bool(manager.add(plugin))
    return False


def _load_everything(manager: Any) -> None:
    """apprise's own full load; what was registered here first is dropped (the modules
    stay imported, so the objects already made from them keep working)."""
    if _narrowed():
        manager.unload_modules()
    manager.load_modules()
