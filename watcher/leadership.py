"""Which accounts this process polls: all of them alone on SQLite (`Solo`: the state
file's lock already makes it the only writer), and with PostgreSQL those whose lease it
holds (`Elector`), as SPEC "Scale-out" describes.

The elector renews its leases every third of the lease. A lease counts as held only
while its last renewal began less than two thirds of the lease ago on the monotonic
clock: a renewal that hangs (a silent database) or fails lets the lease lapse here,
at once, well before another replica may take it over at its expiry on the database's
clock. Every commit also checks the lease in its own transaction (the fence), so even
a replica paused past that point commits nothing once it wakes up.

Between renewals it looks for accounts nobody holds, every TAKE_OVER_SECONDS, so a
lease released by a replica that stopped cleanly is taken within about that. Each
replica holds at most its share, ceil(accounts / live replicas); one holding more
releases one account a round, which a replica with fewer takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import structlog

from watcher.store import Lease, Store, StoreError

log = structlog.get_logger("watcher.leadership")
TAKE_OVER_SECONDS = 1.0


class Leadership(Protocol):
    def leads(self) -> list[str]: ...
    def fence(self, account: str) -> Lease | None: ...


class Solo:
    """SQLite: this process leads every account, and its commits need no fence."""

    def __init__(self, accounts: Sequence[str]) -> None:
        self._accounts = list(accounts)

    def leads(self) -> list[str]:
        return list(self._accounts)

    def fence(self, account: str) -> Lease | None:
        return None


class Elector:
    def __init__(
        self,
        store: Store,
        accounts: Sequence[str],
        replica: str,
        lease: float,
        *,
        instance: str | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._accounts = sorted(accounts)
        self.replica = replica
        # this process, alive while it renews: what its delivery claims are held by
        self.instance = instance or replica
        self.lease = lease
        self._held: dict[str, Lease] = {}
        self._renewed: dict[str, float] = {}  # account -> monotonic start of its last renewal
        self._on_change = on_change  # told when the accounts led change
        self._share = len(self._accounts)

    # -- what the daemon asks ------------------------------------------------------------

    def leads(self) -> list[str]:
        """The accounts whose lease holds now, by the monotonic clock."""
        return [a for a in self._accounts if self.fence(a) is not None]

    def fence(self, account: str) -> Lease | None:
        lease = self._held.get(account)
        if lease is None:
            return None
        if time.monotonic() - self._renewed[account] >= self.lease * 2 / 3:
            return None
        return lease

    # -- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every third of the lease, look for free accounts in between, until
        `stop`; then release every lease held."""
        next_renewal = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_renewal:
                next_renewal = now + self.lease / 3
                await self._round(renew=True)
            else:
                await self._round(renew=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=TAKE_OVER_SECONDS)
        await self.release_all()

    async def _round(self, *, renew: bool) -> None:
        before = set(self.leads())
        try:
            async with asyncio.timeout(self.lease / 3):
                if renew:
                    live = await self._store.replicas(self.instance, self.lease)
                    self._share = math.ceil(len(self._accounts) / max(1, live))
                    await self._renew_all()
                    await self._shed()
                await self._take_free()
        except (StoreError, TimeoutError) as exc:
            reason = str(exc) or "the database did not answer in time"
            log.warning("lease_round_failed", error=reason, leads=self.leads())
        self._lapse()
        if set(self.leads()) != before:
            self._on_change()

    async def _renew_all(self) -> None:
        for account, lease in list(self._held.items()):
            started = time.monotonic()
            if await self._store.renew(lease, self.lease):
                self._renewed[account] = started
            else:
                self._drop(account, "taken over by another replica")

    async def _shed(self) -> None:
        """Hold no more than the share: release one account a round (a standby with
        fewer takes it up)."""
        held = sorted(self._held)
        if len(held) > self._share:
            account = held[-1]
            await self._store.release(self._held[account])
            self._drop(account, "rebalancing", level="info")

    async def _take_free(self) -> None:
        """Take accounts whose lease is free, up to the share."""
        if len(self._held) >= self._share:
            return
        leaders = {leader.account: leader for leader in await self._store.leaders()}
        for account in self._accounts:
            if len(self._held) >= self._share:
                return
            current = leaders.get(account)
            if account in self._held or (current is not None and current.expires_in > 0):
                continue
            started = time.monotonic()
            lease = await self._store.acquire(account, self.replica, self.lease)
            if lease is not None:
                self._held[account] = lease
                self._renewed[account] = started
                log.info("lease_taken", account=account, epoch=lease.epoch, replica=self.replica)

    def _lapse(self) -> None:
        """Forget leases not renewed within two thirds of the lease: stop polling them."""
        for account in list(self._held):
            if self.fence(account) is None:
                self._drop(account, "not renewed within two thirds of the lease")

    def _drop(self, account: str, reason: str, *, level: str = "warning") -> None:
        lease = self._held.pop(account)
        self._renewed.pop(account, None)
        getattr(log, level)("lease_lost", account=account, epoch=lease.epoch, reason=reason)

    async def take_all(self) -> None:
        """`watcher once`: take every account nobody leads (no share: it is alone in
        wanting them for this one cycle)."""
        self._share = len(self._accounts)
        await self._take_free()

    async def release_all(self) -> None:
        """On a clean stop: let standbys take over at once."""
        for account, lease in list(self._held.items()):
            try:
                async with asyncio.timeout(2.0):
                    await self._store.release(lease)
            except (StoreError, TimeoutError) as exc:
                log.warning("lease_not_released", account=account, error=str(exc))
            else:
                log.info("lease_released", account=account, epoch=lease.epoch)
            self._held.pop(account, None)
