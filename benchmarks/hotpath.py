"""Where a profiled cycle's time goes: top functions by own time, own time by component
(library or watcher module), and the cumulative time of the watcher's pipeline stages.
"""

from __future__ import annotations

import cProfile
import pstats
import re
from collections import defaultdict
from typing import Any

# (file, line, function) -> (primitive calls, calls, own time, cumulative time, callers)
Key = tuple[str, int, str]

# The pipeline's stages: (label, regex on the module path, function name); cumulative
# seconds. Regexes, not exact files, so that moving code between modules keeps them.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("fetch + parse (client.list_jobs)", r"watcher/client\.py", "list_jobs"),
    ("  parse pages (payload.parse_list)", r"watcher/payload\.py", "parse_list"),
    ("  decode pages (payload.decode_listing)", r"watcher/payload\.py", "decode_listing"),
    ("follow unfinished (client.get_job)", r"watcher/client\.py", "get_job"),
    ("read state (store.seen)", r"watcher/store", "seen"),
    ("read open jobs (store.open_jobs)", r"watcher/store", "open_jobs"),
    ("diff (tracker.diff)", r"watcher/tracker\.py", "diff"),
    ("timers (timers.stuck)", r"watcher/timers\.py", "stuck"),
    ("rules (rules.Router)", r"watcher/rules\.py", "__call__"),
    ("queue alerts (cycle.alerts_for)", r"watcher/cycle\.py", "alerts_for"),
    ("persist (store.commit_cycle, alerts incl.)", r"watcher/store", "commit_cycle"),
    ("prune (store.prune)", r"watcher/store", "prune"),
    ("log lines (structlog, all calls)", r"structlog/stdlib\.py", "_proxy_to_logger"),
    ("  of which the redactor (logs.Redactor)", r"watcher/logs\.py", "__call__"),
)

_COMPONENTS: tuple[tuple[str, str], ...] = (
    (r"sqlite3", "sqlite3"),
    (r"site-packages/pydantic", "pydantic"),
    (r"site-packages/aiohttp|site-packages/yarl|site-packages/multidict", "aiohttp"),
    (r"site-packages/structlog|/logging/", "logging (structlog)"),
    (r"site-packages/jinja2|site-packages/markupsafe", "jinja2"),
    (r"/json/|'_json\.|json\.decoder", "json"),
    (r"/asyncio/|select\.epoll|selectors\.py", "asyncio loop"),
    (r"site-packages/apscheduler", "apscheduler"),
    (r"datetime|fromisoformat|isoformat", "datetime"),
)


def component(key: Key) -> str:
    """Which library or watcher module a profiled function belongs to."""
    path, _, name = key
    watcher = re.search(r"/(watcher/[\w/]+\.py)$", path)
    if watcher:
        return watcher.group(1)
    label = f"{path} {name}"
    for pattern, name_ in _COMPONENTS:
        if re.search(pattern, label):
            return name_
    return "other (builtins, stdlib)"


def _label(key: Key) -> str:
    path, line, name = key
    short = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path)
    short = re.sub(r".*/(watcher/)", r"\1", short)
    return f"{short}:{line}({name})" if path != "~" else name


def summarise(prof: cProfile.Profile, top: int = 15) -> dict[str, Any]:
    stats: dict[Key, tuple[int, int, float, float, Any]] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values()) or 1e-9
    functions = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    by_component: dict[str, float] = defaultdict(float)
    for key, row in stats.items():
        by_component[component(key)] += row[2]
    stages = []
    for label, where, name in STAGES:
        cumulative = sum(
            row[3] for key, row in stats.items() if key[2] == name and re.search(where, key[0])
        )
        stages.append({"stage": label, "seconds": cumulative, "share": cumulative / total})
    return {
        "total_seconds": total,
        "top_functions": [
            {
                "function": _label(key),
                "calls": row[1],
                "own_seconds": row[2],
                "share": row[2] / total,
                "cumulative_seconds": row[3],
            }
            for key, row in functions
        ],
        "components": [
            {"component": name, "seconds": sec, "share": sec / total}
            for name, sec in sorted(by_component.items(), key=lambda kv: kv[1], reverse=True)
        ],
        "stages": stages,
    }
