"""What `watcher check` prints about channels: URLs masked, no secret of any channel kind."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from tests.e2e import proc
from tests.unit.test_logs import CHANNELS, Channel, leaks
from watcher import report
from watcher.settings import Settings

CLIENT_SECRET = "cl-SECRET-r3p0rt"


def settings() -> Settings:
    return Settings(
        api={"realm": "my-realm", "client_id": "cid", "client_secret": CLIENT_SECRET},
        channels={name: channel.url for name, channel in CHANNELS.items()},
    )


@pytest.mark.parametrize("channel", CHANNELS.values(), ids=CHANNELS)
def test_masked_url_hides_every_secret(channel: Channel) -> None:
    """The URL as `check` prints it has no secret, whole or in part (custom headers
    included, which apprise's own masked form shows), and keeps the readable parts."""
    shown = report.masked_url(channel.url)
    assert not leaks(shown, channel), shown
    assert all(part in unquote(shown) for part in channel.public), shown


def test_masked_url_keeps_apprise_masks() -> None:
    """Where apprise hides a value itself, its own mask is what `check` prints."""
    shown = report.masked_url(CHANNELS["json"].url)
    assert shown.startswith("json://hookuser:****@hooks.example.com/perf/alerts?"), shown


def test_masked_url_of_an_invalid_url_says_so() -> None:
    """A URL apprise cannot load is not printed at all."""
    assert report.masked_url("msteams://contoso/a1b2c3d4/0123456789abcdef") == "(invalid URL)"


def test_secrets_cover_every_channel_and_the_api() -> None:
    """What the CLI hands the log pipeline holds each channel's secrets and the API's."""
    found = set(report.secrets(settings()))
    assert CLIENT_SECRET in found
    assert all(set(c.secrets) <= found for c in CHANNELS.values())


def test_summary_lists_every_channel_without_its_secrets() -> None:
    """The summary of `check` names each channel, with no secret of any of them."""
    text = report.summary(settings())
    assert all(f"  {name}: " in text for name in CHANNELS)
    assert not [name for name, c in CHANNELS.items() if leaks(text, c)]


async def test_check_prints_no_channel_secret(tmp_path: Path) -> None:
    """`watcher check` itself, with one channel of each kind, prints none of their secrets."""
    path = tmp_path / "watcher.yaml"
    document = {
        "api": {"realm": "my-realm", "client_id": "cid", "client_secret": CLIENT_SECRET},
        "channels": {name: channel.url for name, channel in CHANNELS.items()},
        "rules": [{"name": "all", "notify": sorted(CHANNELS)}],
        "state": {"path": str(tmp_path / "state.db")},
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    code, out = await proc.run("check", "-c", str(path))
    assert code == 0, out
    assert CLIENT_SECRET not in out
    assert not [name for name, c in CHANNELS.items() if leaks(out, c)], out
    assert "tgram://1...w/-1001234567/" in out


def test_status_of_an_empty_state_file_is_no_state_yet(tmp_path: Path) -> None:
    """The daemon creates the file empty (owner-only) just before SQLite fills it: status
    seen in between, or after a start that failed there, is "not polled yet", not an
    unusable file."""
    path = tmp_path / "watcher.db"
    path.touch()
    assert report.status(path) == {"state": str(path), "exists": False}


def test_status_text_escapes_what_the_api_named() -> None:
    """Job names and srefs come from the API: `status` prints their control and bidi
    characters as escapes, never raw to the terminal, one item a line."""
    hostile = "Nightly \u202egnp.exe \x1b[2J\r\nforged"
    data = {
        "exists": True,
        "state": "state.db",
        "last_poll": None,
        "jobs_known": 1,
        "jobs_followed": 0,
        "outbox": {"pending": 1, "sent": 0, "given_up": 0},
        "recent_events": [
            {
                "at": "2026-01-01",
                "sref": "jobs/1\u2066",
                "kind": "transition",
                "from": "new",
                "to": "failed",
            }
        ],
        "pending": [
            {
                "id": 1,
                "channel": "ops",
                "rule": "r",
                "title": f"{hostile} failed",
                "attempts": 1,
                "last_error": "delivery failed",
            }
        ],
        "given_up": [],
    }
    text = report.status_text(data)
    assert not set("\u202e\u2066\x1b\r") & set(text), text
    assert "Nightly \\u202egnp.exe \\x1b[2J\\r\\nforged failed" in text
    assert "jobs/1\\u2066" in text
    assert len(text.splitlines()) == 8
