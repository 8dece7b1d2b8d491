"""The benchmark still runs: `benchmarks/run.py --quick` end to end, in a subprocess.

Tiny sizes, one repeat; only that it finishes and writes its JSON with every part is
checked. No timing is asserted: CI machines are too noisy for that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = {
    "poll",
    "window",
    "startup",
    "follow",
    "history",
    "burst",
    "latency",
    "profile",
    "targets",
    "meta",
}


def test_the_quick_benchmark_runs_and_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert set(results) >= PARTS
    (poll,) = results["poll"]
    assert {"jobs", "pages", "limit", "limit_parallel", "sqlite", "alerting"} <= set(poll)
    assert {"first", "steady", "peak_rss_mb", "base_rss_mb"} <= set(poll["sqlite"])
    assert {"wall", "cpu", "cpu_vs_limit", "wall_vs_parallel"} <= set(poll["sqlite"]["first"])
    mixes = {"mixed", "ended", "catch-up, mixed", "catch-up, ended"}
    assert set(results["window"]["mixes"]) == mixes
    assert {"reference", "large", "growth"} <= set(results["window"]["mixes"]["catch-up, ended"])
    assert {"watcher --version", "watcher check"} <= set(results["startup"])
    assert {"rss_mb", "hwm_mb", "children"} <= set(results["idle"])
    assert {"requests", "minimum"} <= set(results["follow"])
    assert {"empty", "history", "ratio", "state_file_bytes"} <= set(results["history"])
    assert {"fast_seconds", "slow_seconds", "alerts_per_second"} <= set(results["burst"])
    assert {"p50", "p99", "floor"} <= set(results["latency"])
    assert results["profile"]
    assert {"top_functions", "components", "stages"} <= set(results["profile"][0])
