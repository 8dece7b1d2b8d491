"""The commands that use only the state (`status`, `history`, `silence`, `ack`, `retry`)
run without the API's secrets and the channels' in their environment, as an operator's
shell has them; `run`, `once` and `check` still refuse a file whose variables are unset."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import CLIENT_SECRET, HOOK_PASSWORD, Hook, config_document, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

SECRET_VAR, HOOK_VAR = "PA_CLIENT_SECRET_E2E", "HOOK_PASSWORD_E2E"
# Each command, and what its output shows when it worked.
STATE_COMMANDS = [
    (["status"], "last successful poll:"),
    (["history"], "Checkout failed"),
    (["silence", "add", "--match", "name=x", "--for", "1h", "--comment", "c"], "name=x"),
    (["silence", "list"], "name=x"),
    (["ack", "--template", "jobTemplates/7", "--comment", "known"], "jobTemplates/7"),
    (["ack", "--list"], "jobTemplates/7"),
    (["retry", "--given-up"], "requeued 0 given-up alert(s)"),
]


async def once(path: str) -> None:
    code, out = await proc.run(
        "once", "-c", path, **{SECRET_VAR: CLIENT_SECRET, HOOK_VAR: HOOK_PASSWORD}
    )
    assert code == 0, out


@pytest.fixture
def path(tmp_path: Path, sim: SimulatorHandle, hook: Hook) -> str:
    """A configuration whose client secret and hook password come from variables."""
    doc = config_document(
        sim, tmp_path, {"hook": hook.url.replace(HOOK_PASSWORD, f"${{{HOOK_VAR}}}")}
    )
    doc["api"]["client_secret"] = f"${{{SECRET_VAR}}}"
    return str(write_config(tmp_path / "watcher.yaml", doc))


async def test_state_commands_run_without_the_api_and_channel_secrets(
    path: str, world: World
) -> None:
    """Two polls with the secrets set (the first records, the second alerts); then each
    command, in order, without them."""
    await once(path)
    world.add_job(name="Checkout", status="failed", template="jobTemplates/7")
    await once(path)
    for args, shown in STATE_COMMANDS:
        code, out = await proc.run(*args, "-c", path)
        assert (code, "is not set" in out) == (0, False), f"watcher {' '.join(args)}: {out}"
        assert shown in out, f"watcher {' '.join(args)}: {out}"


async def test_status_json_without_the_secrets_reads_the_state(path: str) -> None:
    """What `status --json` reads is the state the daemon wrote, not a stand-in's."""
    await once(path)
    code, out, err = await proc.run_apart("status", "-c", path, "--json")
    assert code == 0, err
    assert json.loads(out)["last_poll"] is not None


@pytest.mark.parametrize("command", ["run", "once", "check"])
async def test_commands_that_use_the_api_still_need_its_secrets(path: str, command: str) -> None:
    """For them an unset variable is the configuration error it always was."""
    code, out = await proc.run(command, "-c", path)
    assert code == 2, out
    assert f"environment variable {SECRET_VAR} is not set" in out


@pytest.mark.usefixtures("lenient_umask")
async def test_a_state_a_state_command_creates_is_owner_only(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """`watcher silence add` before any daemon ran: under umask 022 the folders it makes
    are 0700 and the state file 0600, as the daemon's (test_one_writer)."""
    doc = config_document(sim, tmp_path, {"hook": hook.url})
    state = tmp_path / "made" / "deeper" / "watcher.db"
    doc["state"] = {"path": str(state)}
    path = str(write_config(tmp_path / "watcher.yaml", doc))
    add = ["silence", "add", "-c", path, "--match", "name=x", "--for", "1h", "--comment", "c"]
    code, out = await proc.run(*add)
    assert code == 0, out
    modes = [stat.S_IMODE(p.stat().st_mode) for p in (state.parent.parent, state.parent, state)]
    assert modes == [0o700, 0o700, 0o600]
