"""One poll cycle end to end: observe -> diff -> route and render -> one atomic commit.

The only place where the pipeline's stages meet; each stage stays ignorant of the
others. A cycle that fails anywhere before the commit leaves the store untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from watcher import poller, render, rules, tracker
from watcher.client import Client
from watcher.metrics import Metrics
from watcher.models import Alert, Event, Window
from watcher.settings import PollSettings, Rule
from watcher.store import CycleCommit, SqliteStore

log = structlog.get_logger("watcher.cycle")


@dataclass(frozen=True, slots=True)
class CycleReport:
    window: Window
    pages: int
    requests: int
    jobs_seen: int
    skipped: int
    events: int
    alerts: int
    followed: int
    seconds: float


def alerts_for(event: Event, rule_list: Sequence[Rule]) -> list[Alert]:
    """The alerts an event causes: one per firing rule and channel, rendered now."""
    out: list[Alert] = []
    for decision in rules.evaluate(event, rule_list):
        rule = decision.rule
        log.debug("rule_decision", rule=rule.name, sref=event.job.sref, reason=decision.reason)
        if not decision.fires:
            continue
        variables = render.context(event, rule.name, str(rule.severity))
        title = _render(rule.title, render.DEFAULT_TITLES[event.kind], variables, rule.name)
        body = _render(rule.body, render.DEFAULT_BODY, variables, rule.name)
        out.extend(
            Alert(
                event_key=event.key,
                rule=rule.name,
                channel=channel,
                severity=rule.severity,
                title=title,
                body=body,
                sref=event.job.sref,
            )
            for channel in rule.notify
        )
    return out


def _render(source: str | None, default: str, variables: dict[str, object], rule: str) -> str:
    if source is not None:
        try:
            return render.render(source, variables)
        except Exception as exc:  # a template that broke on odd data must not lose the alert
            log.error("template_failed", rule=rule, error=str(exc), using="default template")
    return render.render(default, variables)


async def run_cycle(
    client: Client,
    store: SqliteStore,
    poll: PollSettings,
    rule_list: Sequence[Rule],
    clock: Callable[[], datetime],
    metrics: Metrics | None = None,
) -> CycleReport:
    started = time.monotonic()
    now = clock()
    watermark = store.watermark()
    open_jobs = store.open_jobs()
    observation, unfollow = await poller.observe(client, poll, watermark, open_jobs, now)
    srefs = [job.sref for job in observation.jobs]
    previous = {**open_jobs, **store.states([s for s in srefs if s not in open_jobs])}
    baseline = watermark is None and not poll.alert_on_first_run
    diff = tracker.diff(previous, observation.jobs, now, baseline=baseline)
    for ignored in diff.ignored:
        log.warning(
            "job_report_ignored",
            sref=ignored.sref,
            reason=ignored.reason,
            reported_status=ignored.status,
        )
    alerts = [alert for event in diff.events for alert in alerts_for(event, rule_list)]
    queued = store.commit_cycle(
        CycleCommit(
            states=diff.states,
            events=diff.events,
            alerts=alerts,
            watermark=observation.window.end,
            now=now,
            unfollowed=unfollow,
        )
    )
    for event in diff.events:
        log.info(
            "job_transition",
            sref=event.job.sref,
            name=event.job.name,
            from_status=event.from_status,
            to_status=event.to_status,
        )
    report = CycleReport(
        window=observation.window,
        pages=observation.pages,
        requests=observation.requests,
        jobs_seen=len(observation.jobs),
        skipped=observation.skipped,
        events=len(diff.events),
        alerts=queued,
        followed=len(open_jobs) - len(unfollow),
        seconds=time.monotonic() - started,
    )
    if metrics:
        for event in diff.events:
            metrics.events.labels(str(event.kind)).inc()
        metrics.records_skipped.inc(observation.skipped)
    return report
