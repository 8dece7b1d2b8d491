"""The daemon's idle memory: `watcher run` with one channel (a json:// webhook), the
SQLite store and the default server (metrics on), after a few polls of a quiet
simulator, against issue 18's target of 50 MB.

Two processes besides this one: the simulator (a few ended jobs, nothing changes) and
`python -m watcher run`. Once the daemon has logged `poll_done` POLLS times and the
render worker's idle time has passed since it started (the worker checked the rule's
template at start), its VmRSS and VmHWM are read from /proc, with those of its children
(the render worker, if one still runs). Each run is a fresh state and a fresh process;
the median of `repeat` runs.

    python -m benchmarks.footprint [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import yaml

from benchmarks.harness import NOWHERE, ROOT, Poll, Sim, child_env, simulator, stop, watcher_doc
from benchmarks.report import table
from watcher.render_worker import IDLE_SECONDS

IDLE_TARGET_MB = 50.0
POLLS = 3
JOBS = 20  # a quiet account: a few ended jobs, nothing new
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(sim: Sim, tmp: Path) -> Path:
    """One channel, one rule, polls every second; the server on a free port (two runs
    on one host would clash on the default port, which is its only difference)."""
    poll = Poll(lookback=3600.0, overlap=120.0, interval=1.0, alert_on_first_run=False)
    doc = watcher_doc(sim, tmp / "state.db", page_size=100, poll=poll, channels={"ops": NOWHERE})
    doc["rules"] = doc["rules"][:1]
    doc["server"] = {"listen": f"127.0.0.1:{_free_port()}"}
    path = tmp / "watcher.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def status_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid`, in MB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) / 1024.0
    return out


def children(pid: int) -> list[int]:
    """The live children of `pid` (every thread's list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_polls(log: IO[str], proc: subprocess.Popen[str], polls: int) -> None:
    """Read the daemon's log until its `polls`-th `poll_done` (or it dies, or times out)."""
    deadline = time.monotonic() + START_TIMEOUT + polls * 10
    seen = 0
    while seen < polls:
        line = log.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError(f"watcher run exited ({proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {polls} polls within the time allowed")
            time.sleep(0.05)
            continue
        seen += "poll_done" in line


def one_run(sim: Sim) -> dict[str, Any]:
    """One daemon, measured after POLLS polls."""
    with tempfile.TemporaryDirectory(prefix="watcher-footprint-") as name:
        tmp = Path(name)
        config = _config(sim, tmp)
        log_path = tmp / "watcher.log"
        with log_path.open("w") as sink, log_path.open() as log:
            proc = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
                [sys.executable, "-m", "watcher", "run", "-c", str(config)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=child_env(),
                cwd=ROOT,
                text=True,
            )
            try:
                started = time.monotonic()
                _wait_polls(log, proc, POLLS)
                time.sleep(max(0.0, started + IDLE_SECONDS + 2.0 - time.monotonic()))
                own = status_mb(proc.pid)
                kids = [status_mb(pid) for pid in children(proc.pid)]
            finally:
                stop(proc, 20.0)
    return {
        "rss_mb": own["VmRSS"],
        "hwm_mb": own["VmHWM"],
        "children": len(kids),
        "children_rss_mb": sum(k["VmRSS"] for k in kids),
    }


def measure(repeat: int) -> dict[str, Any]:
    """The median of `repeat` runs against one simulator, the target beside."""
    with simulator(jobs=JOBS) as sim:
        runs = [one_run(sim) for _ in range(repeat)]
    rss = statistics.median(r["rss_mb"] for r in runs)
    return {
        "repeat": repeat,
        "polls": POLLS,
        "rss_mb": rss,
        "hwm_mb": statistics.median(r["hwm_mb"] for r in runs),
        "children": max(r["children"] for r in runs),
        "children_rss_mb": statistics.median(r["children_rss_mb"] for r in runs),
        "target_mb": IDLE_TARGET_MB,
        "verdict": "PASS" if rss <= IDLE_TARGET_MB else "MISS",
        "runs": runs,
    }


def text(result: dict[str, Any]) -> str:
    target = f"<= {result['target_mb']:g} MB"
    rows = [
        ["idle RSS (watcher run)", f"{result['rss_mb']:.1f}", target, result["verdict"]],
        ["peak RSS (VmHWM)", f"{result['hwm_mb']:.1f}", "", ""],
        ["children running", result["children"], "", ""],
        ["children RSS", f"{result['children_rss_mb']:.1f}", "", ""],
    ]
    heading = f"median of {result['repeat']} runs, after {POLLS} polls and {IDLE_SECONDS:g} s"
    return heading + "\n" + table(["measure", "MB", "target", "verdict"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    print(text(measure(parser.parse_args(argv).repeat)))


if __name__ == "__main__":
    main()
