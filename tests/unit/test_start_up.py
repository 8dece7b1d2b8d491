"""What a command imports: `--version` and `--help` no command's code, `check` neither the
poll cycle nor the HTTP client nor PostgreSQL's driver. Read from `sys.modules` in a
fresh interpreter that ran the command; start-up times are benchmarks/startup.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e import proc

# Run as the console script would, then list what the interpreter holds.
PROBE = """
import json, sys
from watcher.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.__stderr__)
"""
HEAVY = ("pydantic", "pydantic_settings", "apprise", "aiohttp", "structlog", "yaml", "jinja2")
NOT_FOR_CHECK = (
    "aiohttp",
    "psycopg",
    "apscheduler.schedulers",
    "watcher.app",
    "watcher.cycle",
    "watcher.client",
    "watcher.poller",
    "watcher.server",
    "watcher.explain",
    "watcher.status",
    "watcher.notifier",
    "watcher.store",
    "prometheus_client",
)


def loaded(*args: str, cwd: Path) -> set[str]:
    """The modules of a fresh interpreter after `watcher ARGS`, as top-level packages and
    full names."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=proc.env(),
        cwd=cwd,
        timeout=60,
        check=False,
    )
    names: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return set(names) | {name.split(".")[0] for name in names}


def found(modules: set[str], wanted: tuple[str, ...]) -> list[str]:
    return [name for name in wanted if name in modules]


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["check", "--help"]])
def test_version_and_help_load_no_command_code(args: list[str], tmp_path: Path) -> None:
    """`watcher --version` and every `--help` answer from the grammar alone."""
    modules = loaded(*args, cwd=tmp_path)
    assert found(modules, HEAVY) == []
    assert sorted(m for m in modules if m.startswith("watcher.")) == [
        "watcher.arguments",
        "watcher.cli",
        "watcher.commands",
        "watcher.vocabulary",
    ]


def test_importing_the_entry_point_loads_no_command_code(tmp_path: Path) -> None:
    """The console script's own import, before any argument is read, is as light."""
    code = "import json, sys, watcher.cli; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=proc.env(),
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert found(set(json.loads(done.stdout)), HEAVY) == []


def test_check_loads_neither_the_poll_cycle_nor_the_http_client(tmp_path: Path) -> None:
    """`watcher check` validates offline: what polls, serves or stores is never imported."""
    config = tmp_path / "watcher.yaml"
    doc = {
        "api": {"realm": "r", "client_id": "id", "client_secret": "start-up-secret"},
        "channels": {"ops": "json://127.0.0.1:9/hook"},
        "rules": [{"name": "failures", "match": {"to": ["failed"]}, "notify": ["ops"]}],
    }
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    modules = loaded("check", "-c", str(config), cwd=tmp_path)
    assert "watcher.settings" in modules  # it did validate
    assert found(modules, NOT_FOR_CHECK) == []
