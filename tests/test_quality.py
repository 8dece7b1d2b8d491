"""The code's own standards, as part of the suite: ruff, ruff format and mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "watcher", "tests"],
        ["ruff", "format", "--check", "watcher", "tests"],
        ["mypy", "--strict", "watcher"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_the_code_passes(command: list[str]) -> None:
    """The linters and the type checker find nothing."""
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_configuration_is_valid(tmp_path: Path) -> None:
    """watcher.example.yaml, with its variables set, passes `watcher check`."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PA_CLIENT_ID": "id",
        "PA_CLIENT_SECRET": "example-secret-value",
        "SLACK_TOKEN_A": "T00000000",
        "SLACK_TOKEN_B": "B00000000",
        "SLACK_TOKEN_C": "XXXXXXXXXXXXXXXXXXXXXXXX",
        "SMTP_USER": "user",
        "SMTP_PASSWORD": "smtp-password-value",
        "PYTHONWARNINGS": "ignore:'imghdr' is deprecated:DeprecationWarning",
        "PYTHONPATH": str(ROOT),  # this checkout's package, not whichever one is installed
    }
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "-c", str(ROOT / "watcher.example.yaml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for secret in ("example-secret-value", "smtp-password-value", "XXXXXXXXXXXXXXXXXXXXXXXX"):
        assert secret not in result.stdout + result.stderr
