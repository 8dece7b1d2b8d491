"""Shared plumbing: the simulator subprocess, measurement subprocesses, the watcher
configuration the benchmarks use, and the meters (wall, CPU, peak RSS) children report.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.simulator.runner import Endpoints

ROOT = Path(__file__).resolve().parent.parent
REALM = "sim-realm"  # the simulator's default realm
NOWHERE = "json://127.0.0.1:9/hook"  # a channel the poll-only benchmarks never deliver to
CHILD_TIMEOUT = 1800.0


def child_env() -> dict[str, str]:
    """The environment for every subprocess: no WATCHER_* overrides, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONWARNINGS", None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"  # loopback never via a proxy
    return env


# -- the simulator process -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Sim(Endpoints):
    """A simulator running in its own process."""

    token: str


@contextlib.contextmanager
def simulator(**options: object) -> Iterator[Sim]:
    """Start `benchmarks.simserver` with `options` as flags (jobs=1000 -> --jobs 1000)."""
    flags = [part for k, v in options.items() for part in (f"--{k.replace('_', '-')}", str(v))]
    proc = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
        [sys.executable, "-m", "benchmarks.simserver", *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=child_env(),
        cwd=ROOT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator did not start (exit {proc.wait()})")
        ready = json.loads(line)
        yield Sim(port=int(ready["port"]), token=str(ready["token"]))
    finally:
        stop(proc, 10.0)


def stop(proc: subprocess.Popen[str], patience: float) -> None:
    """SIGTERM, then SIGKILL if `proc` has not ended within `patience` seconds."""
    proc.terminate()
    try:
        proc.wait(patience)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- measurement children --------------------------------------------------------------


def run_child(kind: str, spec: dict[str, Any], timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
    """Run one measurement in a fresh `benchmarks.child` process; its last stdout line."""
    done = subprocess.run(  # noqa: S603 (our own module, fixed arguments)
        [sys.executable, "-m", "benchmarks.child", kind, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip()[-2000:]
        raise RuntimeError(f"benchmark child {kind!r} failed (exit {done.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the watcher's configuration -------------------------------------------------------


@dataclass(frozen=True)
class Poll:
    """The poll section; by default a window that covers every benchmark job each cycle."""

    lookback: float = 6 * 3600.0
    overlap: float = 6 * 3600.0
    interval: float = 60.0
    alert_on_first_run: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "lookback": self.lookback,
            "overlap": self.overlap,
            "max_catch_up": "1d",
            "alert_on_first_run": self.alert_on_first_run,
            **self.extra,
        }


def default_rules(channels: list[str]) -> list[dict[str, Any]]:
    """A realistic rule set: failures, stuck jobs and recoveries."""
    return [
        {
            "name": "failures",
            "match": {"to": ["failed", "expired"]},
            "notify": channels,
            "title": "{{ job.sref }} {{ job.name }} {{ event.to }}",
        },
        {
            "name": "stuck",
            "match": {"event": "stuck", "status": ["running"], "after": "2h"},
            "notify": channels,
        },
        {"name": "recovered", "match": {"event": "recovered"}, "notify": channels},
    ]


def watcher_doc(
    sim: Sim,
    state: Path,
    *,
    page_size: int,
    poll: Poll | None = None,
    channels: dict[str, str] | None = None,
    delivery: dict[str, Any] | None = None,
    listen: str = "",
) -> dict[str, Any]:
    """A configuration document for `Settings(**doc)` or a YAML file."""
    channels = channels or {"ops": NOWHERE}
    return {
        "api": {
            "base_url": sim.base_url,
            "token_url": f"{sim.root_url}/authorisation/token",
            "realm": REALM,
            "access_token": sim.token,
            "timeout": "120s",
            "page_size": page_size,
            "max_pages": 100_000,
            "retries": 1,
        },
        "poll": (poll or Poll()).section(),
        "state": {"path": str(state)},
        "channels": channels,
        "rules": default_rules(sorted(channels)),
        "delivery": {"group_wait": "10s", **(delivery or {})},
        "server": {"listen": listen},
        "shutdown_timeout": "10s",
        "log": {"format": "json", "level": "info"},
    }


# -- meters (used inside the measured child) -------------------------------------------


def _status_kb(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb() -> float:
    return _status_kb("VmRSS") / 1024.0


def peak_rss_mb() -> float:
    """Peak RSS of this process since start, or since the last `reset_peak`."""
    return _status_kb("VmHWM") / 1024.0


def reset_peak() -> bool:
    """Start the peak RSS over from the current RSS (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


class Meter:
    """Wall, CPU and garbage-collector seconds of a block:
    `with Meter() as m: ...; m.wall, m.cpu, m.gc`."""

    wall: float = 0.0
    cpu: float = 0.0
    gc: float = 0.0
    collections: int = 0

    def _gc_phase(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif hasattr(self, "_gc_started"):
            self.gc += time.perf_counter() - self._gc_started
            self.collections += 1

    def __enter__(self) -> Meter:
        gc.callbacks.append(self._gc_phase)
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        gc.callbacks.remove(self._gc_phase)

    def as_dict(self) -> dict[str, float]:
        return {"wall": self.wall, "cpu": self.cpu, "gc": self.gc, "collections": self.collections}
