"""The false-alarm benchmark still runs: `benchmarks/false_alarms.py --quick`, in a
subprocess. Only that it finishes, prints both tables and writes its JSON is checked;
its numbers are never asserted here (they are in benchmarks/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_quick_false_alarm_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "false_alarms.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "benchmarks/false_alarms.py", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "false alarms:" in done.stdout
    assert "detection:" in done.stdout
    assert "a lasting regression:" in done.stdout
    assert "recovery:" in done.stdout
    results = json.loads(out.read_text(encoding="utf-8"))
    assert len(results["false_alarms"]) == 4  # 2, 5, 10 and 20% noise
    assert len(results["detection"]) == 8  # and steps of 25% and 40%
    assert {"cv", "regressed", "per_1000_runs_per_series"} <= set(results["false_alarms"][0])
    assert {"cv", "detected", "median_delay", "max_delay"} <= set(results["detection"][0])
    assert len(results["lasting"]) == 4  # a lasting +25% at each noise level
    assert {"cv", "improved", "extra_regressed"} <= set(results["lasting"][0])
    assert len(results["recovery"]) == 8  # back from +25% and +40% at each
    assert {"cv", "step", "median_delay", "max_delay", "missed"} <= set(results["recovery"][0])
