"""A rule's template that passes `check` but explodes on a real job: the daemon stays
alive and answers, the alert goes with the default title, and neither a restart with
the alert still queued nor `watcher status` freezes on it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.conftest import Hook
from tests.e2e import proc
from tests.e2e.test_operations import cfg
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

# Renders the sample job (Homepage) at once; any other name: 2^40 macro calls.
FAN_OUT_UNLESS_SAMPLE = (
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    "{% if job.name != 'Homepage' %}{{ f(40) }}{% endif %}{{ job.name }} is down"
)


def exploding_rules(hook: Hook) -> list[dict[str, object]]:
    return [
        {
            "name": "failures",
            "match": {"to": ["failed"]},
            "notify": ["hook"],
            "title": FAN_OUT_UNLESS_SAMPLE,
        }
    ]


async def healthz(port: int) -> int:
    """/healthz's status, or 0 when it does not answer within 5 s."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def test_a_template_over_budget_sends_the_default_title_and_the_daemon_answers(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    path, port = cfg(tmp_path, sim, hook, rules=exploding_rules(hook))
    assert (await proc.run("check", "-c", path))[0] == 0  # the sample job is fine
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    world.add_job(name="Checkout", status="failed")
    answers = 0
    while not hook.received:
        assert await healthz(port) == 200, "the daemon stopped answering"
        answers += 1
        assert answers < 1200, "no alert after 60 s"
        await asyncio.sleep(0.05)
    assert hook.titles() == ["Checkout failed"]
    logged = [json.loads(line) for line in daemon.lines]
    over = [(e["rule"], e["part"]) for e in logged if e["event"] == "template_over_budget"]
    assert over == [("failures", "title")]
    assert await daemon.stop() == 0


async def test_a_queued_alert_over_budget_does_not_freeze_stop_status_or_restart(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """The channel is down, so the alert stays queued across a stop; SIGTERM still
    stops the daemon, `status` lists the alert, and the next daemon delivers it."""
    path, port = cfg(tmp_path, sim, hook, rules=exploding_rules(hook))
    hook.down = True
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    world.add_job(name="Checkout", status="failed")
    await proc.eventually(lambda: hook.attempts >= 2, 60, "two failed deliveries")
    assert await healthz(port) == 200
    assert await daemon.stop() == 0
    code, out, err = await proc.run_apart("status", "-c", path, "--json")
    assert code == 0
    (pending,) = json.loads(out)["pending"]  # log lines go to stderr, the JSON alone to stdout
    assert "template_over_budget" in err
    assert pending["title"] == "Checkout failed"
    hook.down = False
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"], 60, "the alert")
    assert await daemon.stop() == 0
