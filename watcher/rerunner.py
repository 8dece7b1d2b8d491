"""The flake filter's requests: the looks at reruns, and their start requests.

A start request (`POST /jobs`) is an action of the fenced outbox, keyed by the failed
job: its row is committed `starting` (attempts + 1) before the request and `started`
(with the new job's sref) after it, each only while the row still reads as this
process left it and, with PostgreSQL, while the account's lease holds. A row found
`starting` later (a crash, a failover, or an answer that never came between the two)
is settled by a look at the template's jobs started since the claim; only when none is
there does the request go again, and only once the row is older than the longest a
start request can take (`Client.start_budget`: till then it may be in flight in a
deposed leader). So no crash or failover starts a job twice, as long as the API lists
a started job by then.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

import structlog

from watcher import flakes
from watcher.client import ApiError, Client, JobGone, JobRefused, StartUnknown
from watcher.flakes import Change, Rerun
from watcher.models import Job
from watcher.store import Lease, Store

log = structlog.get_logger("watcher.rerunner")

MAX_STARTS = 10  # start requests a cycle: a storm of failures waits its turn
MAX_LOOKS = 20  # reruns read by sref a cycle (those the listing did not show)
MAX_ATTEMPTS = 5  # start requests of one rerun that failed before it is given up
RETRY_AFTER = timedelta(minutes=1)  # times the attempts, before a failed start is retried
LOOK_BACK = timedelta(minutes=2)  # before the claim: the API's clock may be behind


async def look(
    client: Client, started: Sequence[Rerun], listed: Mapping[str, Job]
) -> dict[str, Job]:
    """The jobs of started reruns (rerun sref -> job): as this cycle listed them, else
    read by sref (one that cannot be read now is looked at again next cycle)."""
    found: dict[str, Job] = {}
    looks = 0
    for rerun in started:
        job = listed.get(rerun.rerun)
        if job is None and looks < MAX_LOOKS:
            looks += 1
            job = await _read(client, rerun.rerun)
        if job is not None:
            job.rerun_of = rerun.sref
            found[rerun.rerun] = job
    return found


async def _read(client: Client, sref: str) -> Job | None:
    try:
        return await client.get_job(sref)
    except JobGone:
        # Never listed as ended: its deadline releases the held alerts.
        log.warning("rerun_gone", rerun=sref)
    except ApiError as exc:
        log.warning("rerun_unreadable", rerun=sref, error=str(exc), retry="next cycle")
    return None


async def start_due(
    client: Client, store: Store, reruns: Sequence[Rerun], now: datetime, fence: Lease | None
) -> int:
    """Start the reruns that are due (at most MAX_STARTS); how many started (or were
    found started)."""
    taken = {r.rerun for r in reruns if r.rerun}
    grace = timedelta(seconds=client.start_budget)
    due = [r for r in reruns if _due(r, now, grace)][:MAX_STARTS]
    started = 0
    for rerun in due:
        if rerun.state == flakes.STARTING:
            adopted = await _settle(client, store, rerun, taken, now, fence)
            if adopted is None:
                continue  # the listing could not be read: no request blind
            if adopted:
                started += 1
                continue
        started += await _start(client, store, rerun, now, fence)
    return started


def _due(rerun: Rerun, now: datetime, grace: timedelta) -> bool:
    if rerun.state == flakes.DUE:
        return rerun.due_at <= now
    return (
        rerun.state == flakes.STARTING
        and rerun.claimed_at is not None
        and now - rerun.claimed_at >= grace
    )


async def _settle(
    client: Client,
    store: Store,
    rerun: Rerun,
    taken: Collection[str],
    now: datetime,
    fence: Lease | None,
) -> bool | None:
    """A `starting` rerun whose request's outcome is unknown: adopt the job it started,
    if the template's jobs since the claim show one (True), else False; None if they
    cannot be read now."""
    assert rerun.claimed_at is not None
    since = rerun.claimed_at - LOOK_BACK
    try:
        jobs = await client.jobs_of(rerun.failed.template, since, now + LOOK_BACK)
    except ApiError as exc:
        log.warning("rerun_unsettled", sref=rerun.sref, error=str(exc), retry="next cycle")
        return None
    candidates = [
        j
        for j in jobs
        if j.sref != rerun.sref
        and j.sref not in taken
        and j.run_type.casefold() != "scheduled"
        and (j.started_at is None or j.started_at >= since)
    ]
    if not candidates:
        return False
    job = min(candidates, key=lambda j: (j.started_at or now, j.sref))
    log.info(
        "rerun_found", sref=rerun.sref, rerun=job.sref, reason="its start request's answer was lost"
    )
    started = dataclasses.replace(
        rerun, state=flakes.STARTED, rerun=job.sref, rerun_status=job.status
    )
    await store.save_rerun(Change(started), now, expect=(rerun.state, rerun.attempts), fence=fence)
    return True


async def _start(
    client: Client, store: Store, rerun: Rerun, now: datetime, fence: Lease | None
) -> int:
    claim = dataclasses.replace(
        rerun, state=flakes.STARTING, attempts=rerun.attempts + 1, claimed_at=now
    )
    expect = (flakes.STARTING, claim.attempts)
    if not await store.save_rerun(
        Change(claim), now, expect=(rerun.state, rerun.attempts), fence=fence
    ):
        return 0  # another process moved it first
    template = rerun.failed.template
    try:
        sref = await client.start_job(template)
    except JobRefused as exc:
        change = flakes.release(claim, now, f"the start request was refused: {exc}")
    except StartUnknown as exc:
        # Left `starting`: after the start budget, a look at the template's jobs decides.
        log.warning("rerun_start_unknown", sref=rerun.sref, template=template, error=str(exc))
        failed = dataclasses.replace(claim, last_error=str(exc))
        await store.save_rerun(Change(failed), now, expect=expect, fence=fence)
        return 0
    except ApiError as exc:
        change = _retry(claim, now, str(exc))
    else:
        log.info("rerun_started", sref=rerun.sref, rerun=sref, template=template)
        started = dataclasses.replace(
            claim, state=flakes.STARTED, rerun=sref, rerun_status="pending", last_error=""
        )
        await store.save_rerun(Change(started), now, expect=expect, fence=fence)
        return 1
    await store.save_rerun(change, now, expect=expect, fence=fence)
    return 0


def _retry(claim: Rerun, now: datetime, error: str) -> Change:
    """A start request that failed: tried again later, or given up after MAX_ATTEMPTS."""
    if claim.attempts >= MAX_ATTEMPTS:
        return flakes.release(claim, now, f"the rerun could not be started: {error}")
    log.warning("rerun_start_failed", sref=claim.sref, error=error, attempt=claim.attempts)
    later = now + RETRY_AFTER * claim.attempts
    return Change(dataclasses.replace(claim, state=flakes.DUE, due_at=later, last_error=error))
