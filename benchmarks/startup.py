"""Start-up: `watcher --version` and `watcher check` on a minimal configuration, whole
processes timed from outside (wall time), against issue 18's target of 0.3 s each, with
`python -c pass` beside them as the interpreter's own floor.

The three commands take turns in each round, so that a noisy neighbour on the machine
weighs on all of them alike; the median of `repeat` rounds is reported with every run.
Python writes its bytecode caches as an installed package has them (into a temporary
folder: PYTHONPYCACHEPREFIX), after one round that is not counted.

    python -m benchmarks.startup [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import NOWHERE, child_env
from benchmarks.report import table, verdict

TARGET_SECONDS = 0.3
TIMEOUT = 60.0


def _watcher() -> list[str]:
    """The console script beside this interpreter, as users run it; else the module."""
    script = shutil.which("watcher", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "watcher"]


def _config(folder: Path) -> Path:
    """One account, one json:// channel, one rule; no template, no secret from the
    environment."""
    doc = {
        "api": {"realm": "bench-realm", "client_id": "bench", "client_secret": "bench-secret"},
        "state": {"path": str(folder / "state.db")},
        "channels": {"ops": NOWHERE},
        "rules": [{"name": "failures", "match": {"to": ["failed"]}, "notify": ["ops"]}],
    }
    path = folder / "watcher.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _wall(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 (our own interpreter and console script)
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall


def measure(repeat: int) -> dict[str, Any]:
    """Median and every run, in seconds, of each command; the target beside the two of
    watcher's."""
    with tempfile.TemporaryDirectory(prefix="watcher-startup-") as tmp:
        folder = Path(tmp)
        env = child_env()
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "bytecode")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "watcher --version": [*_watcher(), "--version"],
            "watcher check": [*_watcher(), "check", "-c", str(_config(folder))],
        }
        for command in commands.values():  # writes the bytecode caches
            _wall(command, env, folder)
        runs: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(repeat):
            for name, command in commands.items():
                runs[name].append(_wall(command, env, folder))
    return {
        name: {
            "median": statistics.median(walls),
            "runs": walls,
            "target": None if name.startswith("python") else TARGET_SECONDS,
        }
        for name, walls in runs.items()
    }


def text(results: dict[str, Any]) -> str:
    """A row per command: median, fastest, slowest, and the target with its verdict."""
    rows = []
    for name, result in results.items():
        target = result["target"]
        rows.append(
            [
                name,
                result["median"],
                min(result["runs"]),
                max(result["runs"]),
                "" if target is None else f"< {target:g}",
                "" if target is None else verdict(result["median"] < target),
            ]
        )
    runs = len(next(iter(results.values()))["runs"])
    heading = f"start-up: wall time in seconds, {runs} runs each, {os.cpu_count()} cores"
    return heading + "\n" + table(["command", "median", "min", "max", "target", ""], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description="watcher's start-up against issue 18's target")
    parser.add_argument("--repeat", type=int, default=10, help="rounds (default: 10)")
    args = parser.parse_args()
    print(text(measure(args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
