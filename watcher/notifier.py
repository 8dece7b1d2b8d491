"""Outbox delivery through apprise: grouping, retry with backoff, give-up, per channel.

An alert is marked sent only after every URL of its channel accepted it; URLs that
accepted are not sent to again on retry. Each channel delivers in its own task, so
a slow or dead channel never holds up the others. The decision what to do with a
batch is a pure function (`decide`) that takes the clock as an argument.

Several replicas may deliver from one PostgreSQL outbox: a batch is claimed before it
is sent (`Store.claim`), for CLAIM_SECONDS, so no two replicas send one alert, and a
replica that dies mid-send leaves a claim that expires rather than a stranded alert.

Each URL gets the message in the format it reads (`formats.for_url`, or the rule's
`format`), declared to apprise as the body's format so that apprise converts only
where a service wants another, and never escapes twice. Titles are plain text; a
service without titles (Mattermost, Telegram) gets it escaped for the body it leads.

A `regressed` or `improved` alert carries its series' chart (`pictures`) as an SVG
attachment, drawn at send time from the variables it was queued with, unless its rule
says `chart: false`; a channel that takes no files gets the text alone (apprise leaves
attachments out for it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import apprise
import structlog
from apprise.attachment.memory import AttachMemory

from watcher import formats, logs, people, pictures, plugins, quiet, render
from watcher.formats import Format
from watcher.metrics import Metrics
from watcher.models import Alert, DeliveryOutcome, EventKind, OutboxItem, Severity
from watcher.people import Step
from watcher.settings import DeliverySettings
from watcher.store import Store, StoreError

log = structlog.get_logger("watcher.notifier")

_NOTIFY_TYPE = {
    Severity.INFO: apprise.NotifyType.INFO,
    Severity.SUCCESS: apprise.NotifyType.SUCCESS,
    Severity.WARNING: apprise.NotifyType.WARNING,
    Severity.FAILURE: apprise.NotifyType.FAILURE,
}
_SEVERITY_ORDER = list(Severity)
IDLE_WAKE = 30.0  # seconds between outbox checks when nothing is scheduled
# How long a claimed batch is this replica's to send, from the claim renewed right
# before the send: longer than a send takes (each URL's own timeouts are seconds),
# short enough that a dead replica's alerts go soon. A replica paused longer than this
# in the middle of a send may repeat that one message (the documented window).
CLAIM_SECONDS = 30.0
MAX_CHARTS = 4  # charts attached to one digest: the first alerts' that have one


_MAX_ERROR = 500  # characters of a delivery error kept in an alert's history
_TROUBLE = frozenset({"WARNING", "ERROR", "CRITICAL"})


def _covered(
    alert: Alert, silences: Sequence[people.Silence], acks: Sequence[people.Ack], now: datetime
) -> Step | None:
    """The step that keeps an alert from being sent (silenced, acked), or None."""
    fields = people.alert_fields(alert) if silences else {}
    for silence in silences:
        if silence.covers(fields, now):
            return Step(now, "silenced", _said("silence", silence.id, silence.comment))
    for ack in acks:
        if ack.covers(alert):
            return Step(now, "acked", _said("ack", ack.id, ack.comment))
    return None


def _said(what: str, number: int, comment: str) -> str:
    return f"{what} {number}: {comment}" if comment else f"{what} {number}"


@dataclass(frozen=True, slots=True)
class Destination:
    """One channel URL: its apprise object, the format it reads, and whether its service
    has no title of its own (apprise then puts the title at the head of the body)."""

    apprise: apprise.Apprise
    reads: Format
    untitled: bool


def destination(url: str) -> Destination:
    sink = plugins.target(url)
    untitled = any(service.title_maxlen <= 0 for service in sink)
    return Destination(sink, formats.for_url(url), untitled)


@dataclass(frozen=True, slots=True)
class Message:
    title: str  # plain text
    body: str  # in `format`
    severity: Severity
    format: Format = Format.TEXT
    charts: tuple[pictures.Attachment, ...] = ()

    def title_for(self, where: Destination) -> str:
        """The title as `where` takes it: plain text, or escaped for the body it leads."""
        return formats.escape(self.title, self.format) if where.untitled else self.title


_PLAIN = render.Looks()


def compose(
    items: Sequence[OutboxItem], reads: Format = Format.TEXT, looks: render.Looks = _PLAIN
) -> Message:
    """One alert as itself, its body in the format its rule declares or else the one the
    channel `reads`; several as a digest in that format: a summary title, each alert's
    title a line, linked to its job in the portal when there is a pattern."""
    if len(items) == 1:
        queued = items[0].alert
        to = looks.body_format(queued, reads)
        alert = render.finish(queued, to, looks.portal(queued.account))
        return Message(alert.title, alert.body, alert.severity, to)
    severity = max((i.alert.severity for i in items), key=_SEVERITY_ORDER.index)
    lines = [render.line(i.alert, looks.portal(i.alert.account)) for i in items]
    body = digest_body(lines, reads)
    return Message(digest_title([i.alert for i in items]), body, severity, reads)


def charts(
    items: Sequence[OutboxItem], chartless: frozenset[str]
) -> tuple[pictures.Attachment, ...]:
    """The charts of the regressed/improved alerts of a message (at most MAX_CHARTS), but
    those of the rules in `chartless`."""
    found: list[pictures.Attachment] = []
    for alert in (i.alert for i in items if i.alert.rule not in chartless):
        if len(found) == MAX_CHARTS:
            break
        try:
            chart = pictures.for_alert(alert, len(found) + 1)
        except Exception as exc:  # odd variables: the alert still goes, without a picture
            log.error("chart_unavailable", event_key=alert.key, error=str(exc))
            continue
        if chart is not None:
            found.append(chart)
    return tuple(found)


def attachments(message: Message) -> list[AttachMemory] | None:
    """The message's charts as apprise attachments, new for each send: plugins read
    them from their own threads, and a memory attachment's reads share one position."""
    if not message.charts:
        return None
    return [_attachment(chart) for chart in message.charts]


def _attachment(chart: pictures.Attachment) -> AttachMemory:
    # apprise's attachment classes carry no annotations
    return AttachMemory(content=chart.svg, name=chart.name, mimetype=pictures.SVG_TYPE)  # type: ignore[no-untyped-call]


def digest_body(lines: Sequence[tuple[str, str]], to: Format) -> str:
    """A digest's (title, portal link) lines as a list in format `to`."""
    entries = [formats.link(url, title, to) for title, url in lines]
    if to is Format.HTML:
        return "<ul>\n" + "\n".join(f"<li>{entry}</li>" for entry in entries) + "\n</ul>"
    return "\n".join(f"- {entry}" for entry in entries)


def _happening(alert: Alert) -> tuple[bool, str]:
    """(about a template rather than a job, what happened) of one alert."""
    if alert.kind is EventKind.MISSED:
        return True, "missed"
    if alert.kind is EventKind.TRANSITION:
        return False, alert.status or "changed"
    return False, str(alert.kind)  # stuck, recovered


def digest_title(alerts: Sequence[Alert]) -> str:
    """What a digest's alerts say happened, most first, jobs before templates:
    "3 jobs failed, 2 stuck, 1 recovered, 1 template missed its run"."""
    counts = Counter(_happening(alert) for alert in alerts)
    ordered = sorted(counts.items(), key=lambda each: (each[0][0], -each[1]))
    parts: list[str] = []
    noun_said: bool | None = None  # the subject noun said last: job (False) or template
    for (about_template, what), n in ordered:
        phrase = what
        if about_template:
            phrase = "missed its run" if n == 1 else "missed their run"
        if about_template != noun_said:
            noun = "template" if about_template else "job"
            phrase = f"{noun}{'' if n == 1 else 's'} {phrase}"
            noun_said = about_template
        parts.append(f"{n} {phrase}")
    return ", ".join(parts)


def backoff(attempts: int, delivery: DeliverySettings) -> float:
    """Seconds before the next try: exponential from retry_initial, capped, jittered."""
    ceiling = min(delivery.retry_max, delivery.retry_initial * 2.0 ** min(attempts, 30))
    return ceiling * random.uniform(0.5, 1.0)


def decide(
    items: Sequence[OutboxItem], delivered: bool, now: datetime, delivery: DeliverySettings
) -> DeliveryOutcome:
    if delivered:
        return DeliveryOutcome.SENT
    oldest = min(item.created_at for item in items)
    if (now - oldest).total_seconds() >= delivery.give_up_after:
        return DeliveryOutcome.GIVEN_UP
    return DeliveryOutcome.RETRY


def ready(items: Sequence[OutboxItem], now: datetime, group_wait: float) -> datetime:
    """When a channel's batch should go: a retry or a held alert when due, a fresh alert
    after group_wait."""
    return min(_own_time(item) or item.created_at + timedelta(seconds=group_wait) for item in items)


def _own_time(item: OutboxItem) -> datetime | None:
    """The time a retried or held alert waits for; None for a fresh one."""
    return item.next_attempt_at if item.attempts or item.held else None


def _destinations(channels: dict[str, list[str]]) -> dict[str, list[Destination]]:
    return {name: [destination(url) for url in urls] for name, urls in channels.items()}


class Notifier:
    def __init__(
        self,
        store: Store,
        channels: dict[str, list[str]],
        delivery: DeliverySettings,
        clock: Callable[[], datetime],
        *,
        metrics: Metrics | None = None,
        dry_run: bool = False,
        holder: str = "local",
        looks: render.Looks = _PLAIN,
    ) -> None:
        self._store = store
        self._holder = holder  # who claims the alerts it sends (the replica's name)
        self._delivery = delivery
        self._clock = clock
        self._metrics = metrics
        self._dry_run = dry_run
        self._looks = looks
        self._targets = _destinations(channels)
        self._inflight: dict[str, asyncio.Task[bool]] = {}
        self._unknown: set[str] = set()  # channels with pending alerts but no configuration
        self.wake = asyncio.Event()

    def reconfigure(
        self,
        channels: dict[str, list[str]],
        delivery: DeliverySettings,
        looks: render.Looks = _PLAIN,
    ) -> None:
        """New channels, delivery settings and looks; sends in flight finish with the old."""
        self._delivery = delivery
        self._looks = looks
        self._targets = _destinations(channels)
        if self._metrics:
            self._metrics.known_channels(channels)
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; `wake` is set by whoever queued something."""
        while not stop.is_set():
            self.wake.clear()
            try:
                wake_at = await self.start_due()
            except StoreError as exc:  # the database is away: try again after a while
                log.warning("outbox_unreadable", error=str(exc))
                wake_at = None
            delay = IDLE_WAKE
            if wake_at is not None:
                delay = min(IDLE_WAKE, max(0.05, (wake_at - self._clock()).total_seconds()))
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def start_due(self, *, flush: bool = False) -> datetime | None:
        """Start a send for every channel whose batch is ready; return the next wake time."""
        now = self._clock()
        batches: dict[str, list[OutboxItem]] = defaultdict(list)
        horizon = now + timedelta(days=36500) if flush else now
        for item in await self._store.due(horizon, busy=list(self._inflight)):
            if flush and item.held and item.next_attempt_at > now:
                continue  # quiet hours hold even a flush
            batches[item.alert.channel].append(item)
        wake_at: datetime | None = None
        for channel, items in batches.items():
            if channel in self._inflight:
                continue
            if channel not in self._targets:
                # Left pending, not dropped: the channel may come back with a reload.
                if channel not in self._unknown:
                    log.warning("channel_not_configured", channel=channel, alerts=len(items))
                    self._unknown.add(channel)
                continue
            when = now if flush else ready(items, now, self._delivery.group_wait)
            if when > now:
                wake_at = when if wake_at is None else min(wake_at, when)
                continue
            # Retries waiting for their own time, and alerts held by quiet hours, stay out.
            batch = [
                i
                for i in items
                if (own := _own_time(i)) is None or own <= now or (flush and not i.held)
            ]
            claimed = await self._store.claim([i.id for i in batch], self._holder, CLAIM_SECONDS)
            batch = [i for i in batch if i.id in claimed]  # the rest another replica sends
            if not batch:
                continue
            task = asyncio.create_task(self._send_channel(channel, batch))
            self._inflight[channel] = task
            task.add_done_callback(functools.partial(self._finished, channel))
        if wake_at is None:
            wake_at = await self._store.next_due()
        return wake_at

    def _finished(self, channel: str, _task: asyncio.Task[bool]) -> None:
        self._inflight.pop(channel, None)
        self.wake.set()

    async def flush(self, budget: float | None = None) -> bool:
        """Try every pending alert once now (for `once` and shutdown); True if all went."""
        await self.drain(budget)
        try:
            await self.start_due(flush=True)
        except StoreError as exc:
            log.error("outbox_unreadable", error=str(exc))
            return False
        return all(await self.drain(budget))

    async def drain(self, budget: float | None = None) -> list[bool]:
        """Wait for sends in flight; those still running after `budget` seconds are cancelled
        (their alerts stay pending and go after the restart)."""
        tasks = list(self._inflight.values())
        if not tasks:
            return []
        done, pending = await asyncio.wait(tasks, timeout=budget)
        for task in pending:
            task.cancel()
        return [t.result() for t in done if not t.cancelled() and t.exception() is None]

    async def _heeded(self, items: list[OutboxItem], now: datetime) -> list[OutboxItem]:
        """What people said, read from the store on every pass (so a silence added by the
        CLI, the API or another replica counts from the next one): an alert that a
        silence covers is recorded as silenced, one that an acknowledgement covers as
        acked; neither is sent. The rest, to send."""
        silences = [s for s in await self._store.silences(since=now) if s.state(now) == "active"]
        acks = [a for a in await self._store.acks() if a.holds]
        if not silences and not acks:
            return items
        keep: list[OutboxItem] = []
        dropped: dict[Step, list[int]] = defaultdict(list)
        for item in items:
            step = _covered(item.alert, silences, acks, now)
            if step is None:
                keep.append(item)
            else:
                dropped[step].append(item.id)
        for step, ids in dropped.items():
            await self._store.mark_dropped(ids, step)
            log.info(f"alerts_{step.what}", alerts=len(ids), by=step.detail)
            self._count(items[0].alert.channel, DeliveryOutcome(step.what), len(ids))
        return keep

    async def _quiet(self, items: list[OutboxItem]) -> tuple[list[OutboxItem], bool]:
        """Apply what people said (`_heeded`), then quiet hours: hold what falls in a
        window, drop held alerts whose cause is over (when the rule allows). Returns what
        to send now, and whether any of it was held (then it goes as one digest)."""
        now = self._clock()
        items = await self._heeded(items, now)
        windows = self._delivery.quiet_hours
        send: list[OutboxItem] = []
        resolved: list[int] = []
        holds: dict[datetime, list[int]] = defaultdict(list)
        for item in items:
            until = quiet.held_until(now, str(item.alert.severity), windows) if windows else None
            if until is not None:
                holds[until].append(item.id)
            elif item.held and item.alert.resolvable and await self._store.resolved(item.alert):
                resolved.append(item.id)
            else:
                send.append(item)
        for until, ids in holds.items():
            await self._store.mark_held(ids, until, now=now)
            log.info("alerts_held", alerts=len(ids), until=until.isoformat(), reason="quiet_hours")
        if resolved:
            await self._store.mark_resolved(resolved, now)
            log.info("held_alerts_resolved", alerts=len(resolved), reason="resolved_meanwhile")
        return send, any(i.held for i in send)

    async def _send_channel(self, channel: str, items: list[OutboxItem]) -> bool:
        try:
            return await self._deliver(channel, items)
        except StoreError as exc:
            # The outcome could not be recorded: the alerts stay pending and are retried.
            log.error("delivery_not_recorded", channel=channel, error=str(exc))
            return False
        finally:
            await self._count_outbox()

    async def _count_outbox(self) -> None:
        if self._metrics:  # once per channel batch, not per message
            try:
                counts = await self._store.outbox_counts(sent=False)
            except StoreError:
                return  # counted after the next batch
            self._metrics.outbox(counts.pending, counts.given_up)

    async def _deliver(self, channel: str, items: list[OutboxItem]) -> bool:
        """One digest, or with group_wait 0 one message per alert, in order; alerts
        released by the end of quiet hours always go as one digest."""
        items, released = await self._quiet(items)
        if not items:
            return True
        if self._delivery.group_wait > 0 or released:
            return await self._send(channel, items)
        results = [await self._send(channel, [item]) for item in items]
        return all(results)

    async def _send(self, channel: str, items: list[OutboxItem]) -> bool:
        # Rules' templates render in a child process within a budget; waiting for it
        # happens in a thread so the event loop keeps answering meanwhile.
        # Claimed again just before it goes: a replica that was paused past its claim
        # finds the alert another's and does not send it too.
        mine = await self._store.claim([i.id for i in items], self._holder, CLAIM_SECONDS)
        items = [i for i in items if i.id in mine]
        if not items:
            return True
        skip = frozenset.intersection(*(i.done_targets for i in items))
        targets = [(n, t) for n, t in enumerate(self._targets[channel]) if n not in skip]
        wanted = {t.reads for _, t in targets} if not self._dry_run else set()
        messages = await asyncio.to_thread(self._compose, items, wanted)
        message = messages[Format.TEXT]
        bound = log.bind(channel=channel, alerts=len(items), title=message.title)
        if self._dry_run:
            bound.info(
                "alert_dry_run",
                body=message.body,
                severity=str(message.severity),
                charts=[c.name for c in message.charts],
            )
            await self._store.mark_sent([i.id for i in items], self._clock())
            self._count(channel, DeliveryOutcome.DRY_RUN, len(items))
            return True
        results = await asyncio.gather(*(self._notify(t, messages[t.reads]) for _, t in targets))
        done = skip | {n for (n, _), (ok, _) in zip(targets, results, strict=True) if ok}
        error = "; ".join(dict.fromkeys(why for ok, why in results if not ok))
        now = self._clock()
        outcome = decide(items, len(done) == len(self._targets[channel]), now, self._delivery)
        ids = [i.id for i in items]
        if outcome is DeliveryOutcome.SENT:
            await self._store.mark_sent(ids, now)
            bound.info("alert_sent", reason=outcome)
            if self._metrics:  # queued by the cycle that saw the event: its latency
                self._metrics.delivered(channel, (i.created_at for i in items), now)
        elif outcome is DeliveryOutcome.GIVEN_UP:
            await self._store.mark_given_up(ids, now, f"channel kept failing: {error}")
            bound.error(
                "alert_given_up", reason=outcome, attempts=max(i.attempts for i in items) + 1
            )
        else:
            delay = backoff(max(i.attempts for i in items), self._delivery)
            await self._store.mark_retry(ids, now + timedelta(seconds=delay), error, done, now=now)
            bound.warning(
                "alert_retry",
                reason=outcome,
                retry_in=round(delay, 1),
                failed_urls=len(self._targets[channel]) - len(done),
            )
        self._count(channel, outcome, len(items))
        return outcome is DeliveryOutcome.SENT

    def _compose(self, items: list[OutboxItem], reads: set[Format]) -> dict[Format, Message]:
        """The message for each format the channel's URLs read; text always (the log's)."""
        drawn = charts(items, self._looks.chartless)
        return {
            to: dataclasses.replace(compose(items, to, self._looks), charts=drawn)
            for to in {Format.TEXT, *reads}
        }

    async def _notify(self, target: Destination, message: Message) -> tuple[bool, str]:
        """Whether the URL accepted the message; if not, why, as apprise recorded it
        (its last warning or error for this call, secrets masked), for the history."""
        try:
            result = await target.apprise.async_notify(
                title=message.title_for(target),
                body=message.body,
                notify_type=_NOTIFY_TYPE[message.severity],
                # What the body is written in: apprise converts it only for a service
                # that reads another format (Markdown to HTML for an email, say).
                body_format=apprise.NotifyFormat(message.format.value),
                attach=attachments(message),
            )
        except Exception as exc:  # a plugin's bug must not kill the delivery loop
            log.error("channel_error", error=type(exc).__name__)
            return False, f"{type(exc).__name__} in the channel's plugin"
        if result:
            return True, ""
        said = [e.message for e in result.logs() if e.level in _TROUBLE]
        return False, logs.redact(said[-1])[:_MAX_ERROR] if said else result.status.name.lower()

    def _count(self, channel: str, outcome: DeliveryOutcome, n: int) -> None:
        if self._metrics:
            self._metrics.alerts.labels(channel, str(outcome)).inc(n)
