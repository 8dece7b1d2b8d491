"""Silences and acknowledgements end to end: simulator -> daemon -> webhook, on a fixed
clock, with what people say written to the daemon's store as the CLI and the API do
(`web.actions`), between delivery passes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.conftest import Hook
from tests.pipeline.test_events import NIGHTLY, Clock, Harness, Make, clock, make, timed
from watcher.web import Console, actions, data

__all__ = ["clock", "make", "timed"]  # test_events' fixtures, shared

STUCK_RULE = {
    "name": "stuck",
    "match": {"event": "stuck", "status": "running", "after": "2h"},
    "notify": ["hook"],
    "repeat_after": "6h",
    "title": "{{ job.name }} stuck {{ (event.stuck_for // 3600) | int }}h",
}
FAILED_RULE = {"name": "failures", "match": {"to": ["failed"]}, "notify": ["hook"]}


def console(h: Harness, clock: Clock) -> Console:
    return Console(
        store=h.daemon.store,
        accounts=["default"],
        clock=clock,
        token=None,
        shared=False,
        replica="test",
        wake=lambda: None,
    )


async def states(h: Harness, since: datetime) -> dict[str, str]:
    """title-ish (the job) -> the alert's state, from its history."""
    found = await h.daemon.store.alert_records(since)
    return {f"{r.alert.sref}:{r.alert.seq}": r.state for r in found}


async def silence(h: Harness, clock: Clock, **body: Any) -> dict[str, Any]:
    return await actions.add_silence(console(h, clock), {"comment": "maintenance", **body})


async def test_a_silenced_alert_is_recorded_not_sent_and_its_end_resurrects_nothing(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make([FAILED_RULE])
    start = clock.now
    await h.cycle()
    shh = await silence(h, clock, matchers={"name": "Nightly *"}, duration="1h")
    silenced = h.world.add_job(status="failed", **NIGHTLY)
    h.world.add_job(status="failed", name="Search smoke", template="jobTemplates/77")
    clock.advance(minutes=5)
    await h.cycle()
    assert hook.titles() == ["Search smoke failed"]
    assert (await states(h, start))[f"{silenced.sref}:0"] == "silenced"
    await actions.expire_silence(console(h, clock), shh["id"])
    clock.advance(minutes=5)
    await h.cycle()
    await h.restart()
    await h.cycle()
    await h.close()
    assert hook.titles() == ["Search smoke failed"]


async def test_reminders_resume_after_a_silence_ends(make: Make, clock: Clock, hook: Hook) -> None:
    h = make([STUCK_RULE])
    job = h.world.add_job(name="Crawl", status="running", started_at=clock.now)
    await h.cycle()
    await silence(h, clock, matchers={"event": "stuck"}, duration="10h")
    clock.advance(hours=2, minutes=1)
    await h.cycle()  # the first stuck alert: silenced
    clock.advance(hours=6)
    await h.cycle()  # the first reminder: silenced
    clock.advance(hours=6)
    await h.cycle()  # the silence ended: the next reminder goes
    assert hook.titles() == ["Crawl stuck 14h"]
    assert sorted((await states(h, clock.now.replace(year=2000))).values()) == [
        "sent",
        "silenced",
        "silenced",
    ]
    await h.close()
    assert job.status == "running"


async def test_a_job_ack_stops_its_reminders_until_it_moves_on(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make([STUCK_RULE, {"name": "ended", "match": {"to": ["failed"]}, "notify": ["hook"]}])
    job = h.world.add_job(name="Crawl", status="running", started_at=clock.now)
    await h.cycle()
    clock.advance(hours=2, minutes=1)
    await h.cycle()
    assert hook.titles() == ["Crawl stuck 2h"]
    ack = await actions.add_ack(console(h, clock), {"job": job.sref, "comment": "on it"})
    assert ack["holds"]
    clock.advance(hours=6)
    await h.cycle()
    clock.advance(hours=6)
    await h.cycle()
    assert hook.titles() == ["Crawl stuck 2h"]
    h.world.set_status(job, "failed")
    clock.advance(minutes=5)
    await h.cycle()
    assert hook.titles() == ["Crawl stuck 2h", "Crawl failed"]
    assert [a["holds"] for a in await data.acks(h.daemon.store, everything=True)] == [False]
    await h.close()


async def test_a_template_ack_holds_until_it_recovers(make: Make, clock: Clock, hook: Hook) -> None:
    h = make(
        [
            {
                "name": "every",
                "match": {"to": ["failed"], "consecutive": 1, "repeat": "every"},
                "notify": ["hook"],
            },
            {"name": "back", "match": {"event": "recovered"}, "notify": ["hook"]},
        ]
    )
    await h.cycle()
    h.world.add_job(status="failed", **NIGHTLY)
    clock.advance(minutes=10)
    await h.cycle()
    await actions.add_ack(console(h, clock), {"template": NIGHTLY["template"]})
    for status in ["failed", "failed", "completed", "failed"]:
        clock.advance(minutes=10)
        h.world.add_job(status=status, **NIGHTLY)
        await h.cycle()
    await h.close()
    assert hook.titles() == [
        "Nightly checkout failed",
        "Nightly checkout recovered",
        "Nightly checkout failed",
    ]
