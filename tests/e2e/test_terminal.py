"""`watcher status` and `history` as a person reads them: colour on a terminal (a real
pseudo-terminal), none through a pipe, none with NO_COLOR set (https://no-color.org);
`--json` for machines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

COMMANDS = [["status"], ["history"]]
ESC = "\x1b["
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


@pytest.fixture
async def path(tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook) -> str:
    """A state with a failed job's event and its alert, sent."""
    doc = config_document(sim, tmp_path, {"hook": hook.url})
    path = str(write_config(tmp_path / "watcher.yaml", doc))
    for _ in range(2):  # the first poll records what had ended before; the second alerts
        code, out = await proc.run("once", "-c", path)
        assert code == 0, out
        world.add_job(name="Checkout", status="failed", template="jobTemplates/7")
    return path


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
async def test_colour_on_a_terminal_only(path: str, command: list[str]) -> None:
    """The same command: colour on a pseudo-terminal, plain text through a pipe; the same
    lines either way."""
    code, on_terminal = await proc.run_in_terminal(*command, "-c", path)
    assert code == 0, on_terminal
    assert ESC in on_terminal
    code, piped, _err = await proc.run_apart(*command, "-c", path)
    assert code == 0
    assert ESC not in piped
    # the same lines, but for the colour (and the ages, a moment apart)
    assert len(_plain(on_terminal).splitlines()) == len(piped.splitlines())
    assert _plain(on_terminal).splitlines()[0] == piped.splitlines()[0]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
async def test_no_color_turns_colour_off_on_a_terminal(path: str, command: list[str]) -> None:
    """NO_COLOR=1: no colour even on a terminal."""
    code, shown = await proc.run_in_terminal(*command, "-c", path, NO_COLOR="1")
    assert code == 0, shown
    assert ESC not in shown


async def test_status_reads_as_columns_with_ages(path: str) -> None:
    """Events under a header, in one timestamp format with their age, said in words."""
    code, out, _err = await proc.run_apart("status", "-c", path)
    assert code == 0
    lines = out.splitlines()
    header = lines.index("recent events:") + 1
    assert lines[header].split() == ["WHEN", "(UTC)", "AGO", "SUBJECT", "EVENT"]
    event = re.compile(rf"  {STAMP}  (just now|.+ ago) +jobs/\d+ +new -> failed")
    assert any(event.fullmatch(line) for line in lines[header:]), out
    assert re.fullmatch(rf"last successful poll: {STAMP} \((just now|.+ ago)\)", lines[1])


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
async def test_json_for_machines_even_on_a_terminal(path: str, command: list[str]) -> None:
    """`--json` is JSON, without colour, wherever it goes."""
    code, shown = await proc.run_in_terminal(*command, "-c", path, "--json")
    assert code == 0, shown
    assert ESC not in shown
    json.loads(shown)


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
