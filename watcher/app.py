"""Wiring and lifecycle in one place: start-up -> poll and deliver -> drain and stop.

Signal handlers only set a flag. On stop, the scheduler is paused, the cycle in
flight and the sends in flight get `shutdown_timeout` to finish, then whatever is
left is cancelled: an unfinished cycle committed nothing, an unsent alert stays in
the outbox for the next start.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from watcher import cycle, fast, heap, logs, regress, report, schedule, staging
from watcher.baseline import Thresholds
from watcher.client import ApiError, Client
from watcher.config import ConfigError
from watcher.leadership import Elector, Leadership, Solo
from watcher.metrics import Metrics, PollOutcome
from watcher.notifier import Notifier
from watcher.rules import rules_for
from watcher.server import HealthServer, ListenError, Readiness
from watcher.settings import Settings
from watcher.settled import Followed, Settled
from watcher.store import Fenced, Lease, SeriesKey, SqliteStore, Store, StoreError
from watcher.systemd import AccountPoll, ServiceManager, poll_status
from watcher.web import Console

log = structlog.get_logger("watcher.app")

Clock = Callable[[], datetime]
READY_INTERVALS = 3  # /readyz fails once no poll has succeeded for this many intervals


def utcnow() -> datetime:
    return datetime.now(UTC)


def open_store(settings: Settings, *, dry_run: bool) -> SqliteStore:
    """The SQLite store; for a dry run, an in-memory copy, so nothing is recorded."""
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


async def open_state(settings: Settings, *, dry_run: bool) -> Store:
    """The configured store. A dry run against PostgreSQL starts from an empty store in
    memory (it must not write to the shared database, nor copy it whole)."""
    if settings.state.url is None:
        return open_store(settings, dry_run=dry_run)
    if dry_run:
        log.warning("dry_run_starts_empty", reason="state.url: a dry run never writes to it")
        return SqliteStore(Path(":memory:"))
    from watcher.store.postgres import PgStore  # psycopg is loaded only for PostgreSQL

    return await PgStore.open(settings.state.url.get_secret_value())


@dataclass(slots=True)
class Account:
    """One Performance Analyzer account as the daemon polls it."""

    name: str
    client: Client
    store: Store  # scoped to this account
    settled: Settled = field(default_factory=Settled)  # what the next listing need not parse
    followed: Followed = field(default_factory=Followed)  # what the next cycle need not read
    last_success: float | None = None  # monotonic time of its last good poll
    last_error: str | None = None
    led_since: float | None = None  # monotonic time this replica began polling it
    last_report: cycle.CycleReport | None = None  # of its last good poll


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        dry_run: bool = False,
        clock: Clock | None = None,
        local_clock: Clock = utcnow,
        reload: Callable[[], Settings] | None = None,
        explain: bool = False,
    ) -> None:
        """`store` is the opened state (`open_state`; SQLite from the settings if not
        given). `clock` fixes the time outright (tests); by default it is the API's clock
        (its last Date header plus monotonic time since), and `local_clock` until one
        came. `explain` logs every rule's decision on every event, at debug."""
        logs.protect(*report.secrets(settings))
        self._reload = reload
        self._reloading: asyncio.Future[None] | None = None
        self.settings = settings
        self.dry_run = dry_run
        self._local_clock = local_clock
        resolved = settings.accounts_resolved()
        self.metrics = Metrics(resolved, settings.channels)
        self.metrics.poll_interval.set(settings.poll.interval)
        self.store = store if store is not None else open_store(settings, dry_run=dry_run)
        self.accounts = {
            name: Account(name, Client(api, metrics=self.metrics), self.store.scoped(name))
            for name, api in resolved.items()
        }
        self.client = next(iter(self.accounts.values())).client  # whose Date sets the clock
        self.explain = explain
        self.clock: Clock = clock or self._api_time
        self.replica = settings.ha.replica
        # Delivery claims belong to this process: a replica restarted under the same name
        # does not take its predecessor's claims for its own.
        self.instance = f"{self.replica}/{secrets.token_hex(3)}"
        shared = settings.state.url is not None and not dry_run
        # The first poll's scratch file (`staging`): beside the SQLite state, which is
        # known writable; else the temporary folder.
        self._scratch = None if shared or dry_run else settings.state.path.parent
        self.leadership: Leadership = (
            Elector(
                self.store,
                list(self.accounts),
                self.replica,
                settings.ha.lease,
                instance=self.instance,
                on_change=self._leaders_changed,
            )
            if shared
            else Solo(list(self.accounts))
        )
        self.notifier = Notifier(
            self.store,
            settings.channels,
            settings.delivery,
            self.clock,
            metrics=self.metrics,
            dry_run=dry_run,
            holder=self.instance,
            looks=settings.looks(),
        )
        self.stop = asyncio.Event()
        self._cycle: asyncio.Task[bool] | None = None
        self._scheduler: schedule.PollSchedule | None = None
        self._cycles = 0
        self._checkpointing: asyncio.Future[None] | None = None
        self._systemd: ServiceManager | None = None  # told how each cycle went
        self._heap = heap.Heap()
        for name in self.accounts:
            self.metrics.leads(name, name in self.leadership.leads(), changed=False)
        fast.freeze_loaded()

    def console(self) -> Console:
        """What the API and the status page work with."""
        return Console(
            store=self.store,
            accounts=list(self.accounts),
            clock=self.clock,
            token=self.settings.server.api_token,
            shared=not isinstance(self.leadership, Solo),
            replica=self.replica,
            wake=self.notifier.wake.set,
            thresholds=self._thresholds,
        )

    def _thresholds(self, account: str, key: SeriesKey) -> Thresholds:
        """A series' thresholds under the rules as they are now (a reload counts)."""
        return regress.series_thresholds(rules_for(self.settings.rules, account), key)

    def _api_time(self) -> datetime:
        return self.client.api_now(self._local_clock())

    @property
    def last_success(self) -> float | None:
        """Monotonic time of the last poll that succeeded for every account it polled."""
        times = [a.last_success for a in self._led()]
        return None if not times or None in times else min(t for t in times if t is not None)

    @property
    def last_error(self) -> str | None:
        return next((a.last_error for a in self._led() if a.last_error), None)

    def _led(self) -> list[Account]:
        return [self.accounts[name] for name in self.leadership.leads()]

    async def close(self) -> None:
        for account in self.accounts.values():
            await account.client.close()
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        await self.store.close()

    # -- one cycle ----------------------------------------------------------------------

    async def poll_once(self) -> bool:
        """Poll every account this replica leads, one after the other; True if each
        succeeded. Never raises for API or database trouble."""
        self._cycles += 1
        if self._cycles == 1:  # a scratch file a process killed after its commit left
            staging.remove_leftovers(self._scratch or Path(tempfile.gettempdir()))
        # Every line logged while this cycle runs carries its number (contextvars: the
        # delivery task keeps its own context).
        structlog.contextvars.bind_contextvars(cycle=self._cycles)
        try:
            results = [await self._poll(account) for account in self._led()]
        finally:
            structlog.contextvars.unbind_contextvars("cycle")
        if self._systemd is not None:
            self._systemd.status(
                poll_status([self._account_poll(a) for a in self._led()], self.clock())
            )
        if any(results):
            await self._prune()
            self._checkpoint()
            counts = await self.store.outbox_counts(sent=False)
            self.metrics.outbox(counts.pending, counts.given_up)
            self.notifier.wake.set()
        self._heap.release()
        return all(results)

    @staticmethod
    def _account_poll(account: Account) -> AccountPoll:
        report = account.last_report
        if account.last_error or report is None:
            return AccountPoll(account.name, error=account.last_error or "not polled yet")
        return AccountPoll(account.name, report.jobs_seen, report.events, report.alerts)

    async def _poll(self, account: Account) -> bool:
        """One cycle of `account`; a catch-up read in steps (`poller.stepped`) runs them
        one after the other, each committed, until it reaches now or the daemon stops."""
        while (report := await self._run_cycle(account)) is not None:
            if not report.window.catching_up or self.stop.is_set():
                return True
            self.notifier.wake.set()  # the step's alerts go out while the next is read
            self._heap.release()
        return False

    async def _run_cycle(self, account: Account) -> cycle.CycleReport | None:
        """One cycle of `account`, logged and counted; None if it failed."""
        if account.name not in self.leadership.leads():
            return None  # the lease lapsed since the list was made
        fence = self.leadership.fence(account.name)
        started = time.monotonic()
        try:
            report = await cycle.run_cycle(self._context(account, fence))
        except Fenced as exc:
            account.last_error = str(exc)
            self.metrics.poll_done(account.name, PollOutcome.FENCED)
            log.warning("cycle_fenced", account=account.name, error=str(exc), state="unchanged")
            return None
        except (ApiError, StoreError) as exc:
            account.last_error = str(exc)
            self.metrics.poll_done(account.name, PollOutcome.FAILED)
            log.warning("poll_failed", account=account.name, error=str(exc), state="unchanged")
            return None
        except Exception:
            # A bug must not kill the daemon: the cycle committed nothing, the next retries.
            account.last_error = "internal error (see the log)"
            self.metrics.poll_done(account.name, PollOutcome.CRASHED)
            log.exception("poll_crashed", account=account.name, state="unchanged")
            return None
        finally:
            self.metrics.poll_duration.observe(time.monotonic() - started)
        account.last_success = time.monotonic()
        account.last_error = None
        account.last_report = report
        self.metrics.poll_done(account.name, PollOutcome.OK)
        self.metrics.jobs_followed.labels(account.name).set(report.followed)
        window = report.window
        behind = (self.clock() - window.end).total_seconds() if window.catching_up else 0.0
        self.metrics.catch_up_behind.labels(account.name).set(max(0.0, behind))
        log.info(
            "poll_done",
            account=account.name,
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
        return report

    async def readiness(self) -> Readiness:
        """Ready while the store is usable and every account this replica polls had a
        good poll within the last READY_INTERVALS intervals (since it began polling it),
        on the monotonic clock (a step of the wall clock changes nothing). Alone on
        SQLite, it needs a first good poll; a standby replica that polls nothing is
        ready: it delivers."""
        limit = READY_INTERVALS * self.settings.poll.interval
        now = time.monotonic()
        reason: str | None = None
        shared = not isinstance(self.leadership, Solo)
        led = self._led()
        late = [
            a.name
            for a in led
            if now - (a.last_success or a.led_since or now) > limit
            or (not shared and a.last_success is None)
        ]
        if not await self.store.usable():
            reason = "the state store is unusable"
        elif late and not shared and self.last_success is None:
            reason = "no poll has succeeded yet"
        elif late:
            which = f" ({', '.join(late)})" if len(self.accounts) > 1 else ""
            reason = f"no poll has succeeded for more than {limit:.0f}s{which}"
        return Readiness(
            reason=reason,
            last_error=None if reason is None else self.last_error,
            replica=self.replica if shared else None,
            leads=tuple(a.name for a in led) if shared else (),
        )

    def _context(self, account: Account, fence: Lease | None) -> cycle.Context:
        return cycle.Context(
            client=account.client,
            store=account.store,
            poll=self.settings.poll,
            rules=rules_for(self.settings.rules, account.name),
            settled=account.settled,
            followed=account.followed,
            clock=self.clock,
            metrics=self.metrics,
            explain=self.explain,
            account=account.name,
            fence=fence,
            dry_run=self.dry_run,
            scratch=self._scratch,
        )

    def _leaders_changed(self) -> None:
        """The elector took or lost an account: poll a newly taken one at once."""
        led = set(self.leadership.leads())
        now = time.monotonic()
        taken = False
        for name, account in self.accounts.items():
            was_led = account.led_since is not None
            self.metrics.leads(name, name in led, changed=(name in led) != was_led)
            if name not in led:
                account.led_since = None
            elif account.led_since is None:
                account.led_since, taken = now, True
                # another replica may have moved it meanwhile
                account.settled, account.followed = Settled(), Followed()
        idle = self._cycle is None or self._cycle.done()
        if taken and idle and not self.stop.is_set():
            self._cycle = asyncio.create_task(self.poll_once())

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
        """`watcher once`: one cycle, then one try of every pending alert. Beside
        replicas it takes part in the election: it polls the accounts whose lease it can
        take, names the replica leading each of the others, and polls nothing (exit 2)
        when they all have a leader."""
        try:
            if isinstance(self.leadership, Elector) and not await self._elected_once():
                return 2
            polled = await self.poll_once()
            delivered = await self.notifier.flush(budget=self.settings.shutdown_timeout)
        finally:
            if isinstance(self.leadership, Elector):
                await self.leadership.release_all()
            await self.close()
        return 0 if polled and delivered else 1

    async def _elected_once(self) -> bool:
        elector = self.leadership
        assert isinstance(elector, Elector)  # for the type checker
        try:
            await elector.take_all()
            leaders = {leader.account: leader for leader in await self.store.leaders()}
        except StoreError as exc:
            log.error("once_refused", error=str(exc))
            return False
        led = set(elector.leads())
        for name in sorted(set(self.accounts) - led):
            leader = leaders.get(name)
            log.warning(
                "account_led_elsewhere",
                account=name,
                leader=leader.holder if leader else None,
                hint="a running replica polls it; this once does not",
            )
        if not led:
            log.error("once_refused", reason="every account is led by a running replica")
            return False
        return True

    async def run(self, systemd: ServiceManager | None = None) -> int:
        """`watcher run`: poll every interval and deliver, until SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._request_reload)
        server = HealthServer(
            self.settings.server.listen, self.readiness, self.metrics.registry, self.console()
        )
        try:
            await server.start()
        except ListenError:
            await self.close()  # nothing polled yet: the store closes as it opened
            raise
        scheduler = schedule.PollSchedule(self._scheduled_poll, self.settings.poll.interval)
        scheduler.start()
        self._scheduler = scheduler
        delivery = asyncio.create_task(self.notifier.run(self.stop))
        released = asyncio.Event()  # set once the cycle in flight is over: then release
        electing = (
            asyncio.create_task(self.leadership.run(released))
            if isinstance(self.leadership, Elector)
            else None
        )
        log.info(
            "watcher_started",
            interval=self.settings.poll.interval,
            channels=sorted(self.settings.channels),
            rules=len(self.settings.rules),
            accounts=sorted(self.accounts),
            state=report.state_label(self.settings),
            replica=self.replica if electing else None,
            dry_run=self.dry_run,
        )
        watchdog = asyncio.create_task(systemd.watchdog()) if systemd else None
        self._systemd = systemd
        if systemd:
            systemd.ready()
        try:
            await self.stop.wait()
        finally:
            if systemd:
                systemd.stopping()
            await self._shutdown(scheduler, delivery, server, electing, released)
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
            if self._systemd:
                self._systemd.reloading()
            self._reloading = asyncio.ensure_future(self._reload_now(self._reload))

    async def _reload_now(self, reload: Callable[[], Settings]) -> None:
        # Reading and checking a configuration (its YAML, every template) happens in a
        # thread: polls and health answers go on meanwhile.
        outcome = "reload failed (see the log): running on as before"
        try:
            fresh = await asyncio.to_thread(reload)
        except ConfigError as exc:
            log.error("reload_refused", problems=exc.problems, keeping="the running configuration")
            outcome = "reload refused (see the log): running on as before"
        else:
            self.apply(fresh)
            outcome = "configuration reloaded"
        finally:
            # The reload is over, whatever its end: systemd leaves "reloading" only now.
            if self._systemd:
                self._systemd.send(f"READY=1\nSTATUS={outcome}")

    def apply(self, fresh: Settings) -> None:
        """Adopt a new configuration's rules, channels, templates, delivery and interval.

        The API, state and server sections are read at start only: a change there is
        logged and waits for a restart.
        """
        old = self.settings
        logs.protect(*report.secrets(fresh))
        fixed = [
            s
            for s in ("api", "accounts", "state", "ha", "server")
            if getattr(old, s) != getattr(fresh, s)
        ]
        if fixed:
            log.warning("reload_needs_restart", sections=fixed)
        self.settings = fresh.model_copy(update={s: getattr(old, s) for s in fixed})
        self.notifier.reconfigure(fresh.channels, fresh.delivery, self.settings.looks())
        if fresh.poll.interval != old.poll.interval and self._scheduler is not None:
            self._scheduler.set_interval(fresh.poll.interval)
        self.metrics.poll_interval.set(fresh.poll.interval)
        log.info("configuration_reloaded", rules=len(fresh.rules), channels=sorted(fresh.channels))

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("stop_requested", signal=sig.name)
        self.stop.set()

    async def _shutdown(
        self,
        scheduler: schedule.PollSchedule,
        delivery: asyncio.Task[None],
        server: HealthServer,
        electing: asyncio.Task[None] | None,
        released: asyncio.Event,
    ) -> None:
        deadline = time.monotonic() + self.settings.shutdown_timeout
        scheduler.pause()
        if self._cycle and not self._cycle.done():
            done, _ = await asyncio.wait({self._cycle}, timeout=self._left(deadline))
            if not done:
                self._cycle.cancel()
                log.warning("cycle_abandoned", reason="shutdown_timeout", state="unchanged")
        # Only now, with no commit in flight, are the leases released: a standby takes over.
        released.set()
        if electing is not None:
            await asyncio.wait({electing}, timeout=self._left(deadline))
            electing.cancel()
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
