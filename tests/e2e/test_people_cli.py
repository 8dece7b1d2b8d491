"""`watcher silence`, `ack`, `history` and `retry` as subprocesses, beside a running
daemon: a silence added from the shell counts from the next delivery pass (SQLite, and
every replica sharing PostgreSQL), the history shows each alert's life, a given-up
alert is requeued and delivered, and bad input exits 2 naming the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from tests.e2e.test_api import broken
from tests.e2e.test_postgres_cli import pg_config
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

__all__ = ["broken"]  # test_api's fixture: a receiver that is down until told otherwise


def config(tmp_path: Path, sim: SimulatorHandle, channels: dict[str, str], **kw: Any) -> str:
    doc = config_document(sim, tmp_path, channels, poll={"interval": "0.3s"}, **kw)
    return str(write_config(tmp_path / "watcher.yaml", doc))


async def cli(*args: str) -> str:
    code, out = await proc.run(*args)
    assert code == 0, out
    return out


async def history(path: str, *extra: str) -> list[dict[str, Any]]:
    code, out, _err = await proc.run_apart("history", "-c", path, "--json", *extra)
    assert code == 0, out
    found: list[dict[str, Any]] = json.loads(out)
    return found


async def until_history(path: str, check: Any, *extra: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def holds() -> bool:
        nonlocal found
        found = await history(path, *extra)
        return bool(check(found))

    for _ in range(300):
        if await holds():
            return found
        await proc.asyncio.sleep(0.1)
    raise AssertionError(f"history never got there: {found}")


async def test_a_silence_from_the_shell_counts_at_the_next_delivery_pass(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    path = config(tmp_path, sim, {"hook": hook.url}, delivery={"group_wait": "0s"})
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    out = await cli(
        "silence", "add", "-c", path, "--match", "name=Nightly *", "--for", "1h",
        "--comment", "site maintenance", "--by", "ana",
    )  # fmt: skip
    assert "name=Nightly *" in out
    assert "site maintenance" in out
    world.add_job(name="Nightly checkout", status="failed", template="jobTemplates/6789")
    world.add_job(name="Search", status="failed", template="jobTemplates/77")
    await proc.eventually(lambda: hook.titles() == ["Search failed"])
    found = await until_history(path, lambda h: len(h) == 2 and h[0]["state"] != "pending")
    states = {a["title"]: a["state"] for a in found}
    assert states == {"Nightly checkout failed": "silenced", "Search failed": "sent"}
    table = await cli("history", "-c", path)
    assert "silence 1: site maintenance" in table
    listed = json.loads((await proc.run_apart("silence", "list", "-c", path, "--json"))[1])
    assert [(s["id"], s["state"], s["author"]) for s in listed] == [(1, "active", "ana")]
    assert "expired" in await cli("silence", "expire", "-c", path, "1")
    assert await cli("silence", "list", "-c", path) == "no silences\n"
    assert await daemon.stop() == 0
    assert hook.titles() == ["Search failed"]  # expiring it resurrected nothing


async def test_ack_and_retry_from_the_shell(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, broken: Hook
) -> None:
    path = config(
        tmp_path,
        sim,
        {"broken": broken.url},
        delivery={"group_wait": "0s", "retry_initial": "0.2s", "give_up_after": "1s"},
    )
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    job = world.add_job(name="Checkout", status="failed", template="jobTemplates/7")
    found = await until_history(path, lambda h: h and h[0]["state"] == "given_up")
    number = found[0]["id"]
    steps = [s["what"] for s in found[0]["steps"]]
    assert steps[-1] == "given_up"
    assert "attempt" in steps
    assert found[0]["last_error"]  # what apprise said, not a placeholder
    broken.down = False
    assert f"requeued {number}" in await cli("retry", "-c", path, str(number))
    await proc.eventually(lambda: broken.titles() == ["Checkout failed"])
    await until_history(path, lambda h: h[0]["state"] == "sent")
    code, out = await proc.run("retry", "-c", path, str(number))
    assert code == 2
    assert f"alert {number}: is sent" in out

    out = await cli("ack", "-c", path, "--template", "jobTemplates/7", "--comment", "known")
    assert "jobTemplates/7" in out
    assert "known" in out
    assert job.sref  # acknowledged by template: its reminders and repeats stop
    assert "jobTemplates/7" in await cli("ack", "-c", path, "--list")
    assert await daemon.stop() == 0


async def test_bad_input_exits_2_naming_the_problem(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    path = config(tmp_path, sim, {"hook": hook.url})
    cases = [
        (["silence", "add", "--match", "tmpl=x", "--for", "1h", "--comment", "c"], "'tmpl'"),
        (["silence", "add", "--match", "x", "--for", "1h", "--comment", "c"], "key=value"),
        (
            ["silence", "add", "--match", "name=x", "--until", "2020-01-01T00:00:00Z",
             "--comment", "c"],
            "ends_at: must be after starts_at",
        ),
        (["silence", "add", "--match", "name=x", "--for", "soon", "--comment", "c"], "soon"),
        (["silence", "expire", "42"], "silence 42: no such silence"),
        (["ack", "--job", "jobs/404"], "'jobs/404' is not a job the watcher knows"),
        (["retry", "7"], "alert 7: no such alert"),
        (["retry"], "give alert IDs or --given-up"),
        (["history", "--since", "yesterday-ish"], "--since"),
        (["history", "--since", "1e300"], "--since"),  # past any date: refused, not a crash
    ]  # fmt: skip
    for args, problem in cases:
        code, out = (
            await proc.run(*args[:2], "-c", path, *args[2:])
            if args[0] == "silence"
            else (await proc.run(args[0], "-c", path, *args[1:]))
        )
        assert code == 2, (args, out)
        assert problem in out, (args, out)
    code, out = await proc.run("silence", "add", "-c", path, "--for", "1h")
    assert code == 64, out  # a usage error: no --match, no --comment


async def test_a_silence_counts_on_every_replica_sharing_postgresql(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """Two replicas deliver from one outbox; a silence added from the shell stops the
    alert whichever of them sends it."""
    paths = [pg_config(tmp_path, sim, hook, pg_url, name) for name in ("a", "b")]
    replicas = [await proc.Daemon(["run", "-c", p]).start() for p in paths]
    for replica in replicas:  # one leads, the other stands by: either may deliver
        await replica.wait_for_line('"watcher_started"')
    await cli("silence", "add", "-c", paths[1], "--match", "template=jobTemplates/66",
              "--for", "1h", "--comment", "maintenance")  # fmt: skip
    for n in range(4):
        world.add_job(name=f"Quiet {n}", status="failed", template="jobTemplates/66")
    world.add_job(name="Loud", status="failed", template="jobTemplates/1")
    await proc.eventually(lambda: hook.titles() == ["Loud failed"])
    found = await until_history(paths[0], lambda h: len(h) == 5 and h[0]["state"] != "pending")
    assert sorted(a["state"] for a in found) == ["sent"] + ["silenced"] * 4
    for replica in replicas:
        assert await replica.stop() == 0
    assert hook.titles() == ["Loud failed"]
