"""Bearer tokens the simulated authorisation endpoint hands out.

Owns issuing, checking and expiring tokens; knows nothing about HTTP.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable


class TokenStore:
    """Tokens with a lifetime measured on a monotonic clock.

    The world's clock is often frozen in tests; tokens must still run out, so their
    lifetime is real elapsed time (``time.monotonic`` unless another clock is given).
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._expiry: dict[str, float] = {}

    def issue(self, ttl: float) -> str:
        """Make a new token valid for ``ttl`` seconds from now."""
        now = self._monotonic()
        # Prune on issue so a long-running simulator does not grow without bound.
        self._expiry = {t: e for t, e in self._expiry.items() if e > now}
        token = secrets.token_urlsafe(24)
        self._expiry[token] = now + ttl
        return token

    def valid(self, token: str) -> bool:
        """True while ``token`` was issued here and has not expired."""
        expiry = self._expiry.get(token)
        return expiry is not None and self._monotonic() < expiry

    def expire_all(self) -> None:
        """Revoke every token, as when the account owner revokes the credentials."""
        self._expiry.clear()

    def __len__(self) -> int:
        return len(self._expiry)
