"""Wiring and lifecycle in one place: start-up -> poll and deliver -> drain and stop.

Signal handlers only set a flag. On stop, the scheduler is paused, the cycle in
flight and the sends in flight get `shutdown_timeout` to finish, then whatever is
left is cancelled: an unfinished cycle committed nothing, an unsent alert stays in
the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from watcher import cycle, fast, logs, report, schedule
from watcher.client import ApiError, Client
from watcher.config import ConfigError
from watcher.metrics import Metrics
from watcher.notifier import Notifier
from watcher.server import HealthServer, ListenError, Readiness
from watcher.settings import Settings
from watcher.settled import Settled
from watcher.store import SqliteStore, StoreError
from watcher.systemd import ServiceManager

log = structlog.get_logger("watcher.app")

Clock = Callable[[], datetime]
READY_INTERVALS = 3  # /readyz fails once no poll has succeeded for this many intervals


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_store(settings: Settings, *, dry_run: bool) -> SqliteStore:
    """The state store; for a dry run, an in-memory copy, so nothing is recorded."""
    store = SqliteStore(settings.state.path if not dry_run else Path(":memory:"))
    if dry_run and settings.state.path.exists():
        try:
            source = sqlite3.connect(f"file:{settings.state.path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"state.path: cannot open {settings.state.path}: {exc}") from None
        with source:
            store.restore_from(source)
        source.close()
    return store


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        dry_run: bool = False,
        clock: Clock | None = None,
        local_clock: Clock = utcnow,
        reload: Callable[[], Settings] | None = None,
        explain: bool = False,
    ) -> None:
        """`clock` fixes the time outright (tests); by default it is the API's clock (its
        last Date header plus monotonic time since), and `local_clock` until one came.
        `explain` logs every rule's decision on every event, at debug."""
        logs.protect(*report.secrets(settings))
        self._reload = reload
        self._reloading: asyncio.Future[None] | None = None
        self.settings = settings
        self.dry_run = dry_run
        self._local_clock = local_clock
        self.metrics = Metrics()
        self.store = open_store(settings, dry_run=dry_run)
        self.client = Client(settings.api, metrics=self.metrics)
        self.settled = Settled()  # what the next cycle's listing need not parse
        self.explain = explain
        self.clock: Clock = clock or self._api_time
        self.notifier = Notifier(
            self.store,
            settings.channels,
            settings.delivery,
            self.clock,
            metrics=self.metrics,
            dry_run=dry_run,
        )
        self.stop = asyncio.Event()
        self.last_success: float | None = None  # monotonic time of the last good poll
        self.last_error: str | None = None
        self._cycle: asyncio.Task[bool] | None = None
        self._scheduler: schedule.PollSchedule | None = None
        self._cycles = 0
        self._checkpointing: asyncio.Future[None] | None = None
        fast.freeze_loaded()

    def _api_time(self) -> datetime:
        return self.client.api_now(self._local_clock())

    async def close(self) -> None:
        await self.client.close()
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        await self.store.close()

    # -- one cycle ----------------------------------------------------------------------

    async def poll_once(self) -> bool:
        """Run one poll cycle; True on success. Never raises for API trouble."""
        started = time.monotonic()
        self._cycles += 1
        # Every line logged while this cycle runs carries its number (contextvars: the
        # delivery task keeps its own context).
        structlog.contextvars.bind_contextvars(cycle=self._cycles)
        try:
            report = await cycle.run_cycle(self._context())
        except (ApiError, StoreError) as exc:
            self.last_error = str(exc)
            self.metrics.polls.labels("failed").inc()
            log.warning("poll_failed", error=str(exc), state="unchanged")
            return False
        except Exception:
            # A bug must not kill the daemon: the cycle committed nothing, the next retries.
            self.last_error = "internal error (see the log)"
            self.metrics.polls.labels("crashed").inc()
            log.exception("poll_crashed", state="unchanged")
            return False
        finally:
            self.metrics.poll_duration.observe(time.monotonic() - started)
            structlog.contextvars.unbind_contextvars("cycle")
        self.last_success = time.monotonic()
        self.last_error = None
        await self._prune()
        self._checkpoint()
        self.metrics.polls.labels("ok").inc()
        self.metrics.poll_succeeded()
        self.metrics.jobs_followed.set(report.followed)
        counts = await self.store.outbox_counts(sent=False)
        self.metrics.outbox(counts.pending, counts.given_up)
        log.info(
            "poll_done",
            cycle=self._cycles,
            window_start=report.window.start.isoformat(),
            window_end=report.window.end.isoformat(),
            pages=report.pages,
            requests=report.requests,
            jobs_seen=report.jobs_seen,
            skipped=report.skipped,
            events=report.events,
            alerts=report.alerts,
            followed=report.followed,
            seconds=round(report.seconds, 3),
        )
        if report.alerts:
            self.notifier.wake.set()
        return True

    async def readiness(self) -> Readiness:
        """Ready once a poll succeeded within the last READY_INTERVALS intervals, on the
        monotonic clock (a step of the wall clock changes nothing), and the store is usable."""
        limit = READY_INTERVALS * self.settings.poll.interval
        reason: str | None = None
        if not await self.store.usable():
            reason = "the state store is unusable"
        elif self.last_success is None:
            reason = "no poll has succeeded yet"
        elif time.monotonic() - self.last_success > limit:
            reason = f"no poll has succeeded for more than {limit:.0f}s"
        return Readiness(reason=reason, last_error=None if reason is None else self.last_error)

    def _context(self) -> cycle.Context:
        return cycle.Context(
            client=self.client,
            store=self.store,
            poll=self.settings.poll,
            rules=self.settings.rules,
            settled=self.settled,
            clock=self.clock,
            metrics=self.metrics,
            explain=self.explain,
        )

    def _checkpoint(self) -> None:
        """Start a checkpoint of the state file in a worker thread, unless one runs."""
        if self._checkpointing is None or self._checkpointing.done():
            self._checkpointing = asyncio.ensure_future(self._checkpoint_now())

    async def _checkpoint_now(self) -> None:
        try:
            await self.store.checkpoint()
        except StoreError as exc:
            log.warning("checkpoint_failed", error=str(exc))
        except Exception:  # a bug must not leave an unread failure behind: the next one retries
            log.exception("checkpoint_crashed")

    async def _prune(self) -> None:
        before = self.clock() - timedelta(seconds=self.settings.state.retention)
        try:
            removed = await self.store.prune(before)
        except StoreError as exc:
            log.warning("prune_failed", error=str(exc))
            return
        if removed:
            log.info("state_pruned", rows=removed, before=before.isoformat())

    async def _scheduled_poll(self) -> None:
        if self.stop.is_set() or (self._cycle and not self._cycle.done()):
            return
        self._cycle = asyncio.create_task(self.poll_once())
        await asyncio.shield(self._cycle)

    # -- commands -----------------------------------------------------------------------

    async def once(self) -> int:
        """`watcher once`: one cycle, then one try of every pending alert."""
        try:
            polled = await self.poll_once()
            delivered = await self.notifier.flush(budget=self.settings.shutdown_timeout)
        finally:
            await self.close()
        return 0 if polled and delivered else 1

    async def run(self, systemd: ServiceManager | None = None) -> int:
        """`watcher run`: poll every interval and deliver, until SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        server = HealthServer(self.settings.server.listen, self.readiness, self.metrics.registry)
        try:
            await server.start()
        except ListenError:
            await self.close()  # nothing polled yet: the store closes as it opened
            raise
        scheduler = schedule.PollSchedule(self._scheduled_poll, self.settings.poll.interval)
        scheduler.start()
        self._scheduler = scheduler
        delivery = asyncio.create_task(self.notifier.run(self.stop))
        log.info(
            "watcher_started",
            interval=self.settings.poll.interval,
            channels=sorted(self.settings.channels),
            rules=len(self.settings.rules),
            state=str(self.settings.state.path),
            dry_run=self.dry_run,
        )
        watchdog = asyncio.create_task(systemd.watchdog()) if systemd else None
        if systemd:
            systemd.ready()
        try:
            await self.stop.wait()
        finally:
            if systemd:
                systemd.stopping()
            await self._shutdown(scheduler, delivery, server)
            if watchdog:
                watchdog.cancel()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    def _request_reload(self) -> None:
        if self._reload is None:
            log.warning("reload_unavailable", hint="no configuration file to reload")
            return
        if self._reloading is None or self._reloading.done():
            self._reloading = asyncio.ensure_future(self._reload_now(self._reload))

    async def _reload_now(self, reload: Callable[[], Settings]) -> None:
        # Reading and checking a configuration (its YAML, every template) happens in a
        # thread: polls and health answers go on meanwhile.
        try:
            fresh = await asyncio.to_thread(reload)
        except ConfigError as exc:
            log.error("reload_refused", problems=exc.problems, keeping="the running configuration")
            return
        self.apply(fresh)

    def apply(self, fresh: Settings) -> None:
        """Adopt a new configuration's rules, channels, templates, delivery and interval.

        The API, state and server sections are read at start only: a change there is
        logged and waits for a restart.
        """
        old = self.settings
        logs.protect(*report.secrets(fresh))
        fixed = [s for s in ("api", "state", "server") if getattr(old, s) != getattr(fresh, s)]
        if fixed:
            log.warning("reload_needs_restart", sections=fixed)
        self.settings = fresh.model_copy(update={s: getattr(old, s) for s in fixed})
        self.notifier.reconfigure(fresh.channels, fresh.delivery)
        if fresh.poll.interval != old.poll.interval and self._scheduler is not None:
            self._scheduler.set_interval(fresh.poll.interval)
        log.info("configuration_reloaded", rules=len(fresh.rules), channels=sorted(fresh.channels))

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("stop_requested", signal=sig.name)
        self.stop.set()

    async def _shutdown(
        self, scheduler: schedule.PollSchedule, delivery: asyncio.Task[None], server: HealthServer
    ) -> None:
        deadline = time.monotonic() + self.settings.shutdown_timeout
        scheduler.pause()
        if self._cycle and not self._cycle.done():
            done, _ = await asyncio.wait({self._cycle}, timeout=self._left(deadline))
            if not done:
                self._cycle.cancel()
                log.warning("cycle_abandoned", reason="shutdown_timeout", state="unchanged")
        await asyncio.wait({delivery}, timeout=self._left(deadline))
        delivery.cancel()
        await self.notifier.drain(budget=self._left(deadline))
        await scheduler.shutdown()
        await server.stop()
        await self.close()
        log.info("watcher_stopped")

    @staticmethod
    def _left(deadline: float) -> float:
        return max(0.0, deadline - time.monotonic())
