"""What `watcher status` prints: the state store's content for a terminal, escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watcher import status
from watcher.settings import Settings

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)


def test_status_of_an_empty_state_file_is_no_state_yet(tmp_path: Path) -> None:
    """The daemon creates the file empty (owner-only) just before SQLite fills it: status
    seen in between, or after a start that failed there, is "not polled yet", not an
    unusable file."""
    path = tmp_path / "watcher.db"
    path.touch()
    settings = Settings.model_validate(
        {"api": {"realm": "r", "access_token": "t"}, "state": {"path": str(path)}}
    )
    assert status.status(settings) == {"state": str(path), "exists": False}


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
                "at": "2026-01-01T00:00:00+00:00",
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
                "created_at": "2026-01-01T00:00:00+00:00",
            }
        ],
        "given_up": [],
    }
    for colour in (False, True):
        text = status.status_text(data, NOW, colour=colour)
        assert not set("\u202e\u2066\r") & set(text), text
        assert "\x1b[2J" not in text
        assert "Nightly \\u202egnp.exe \\x1b[2J\\r\\nforged failed" in text
        assert "jobs/1\\u2066" in text
        assert len(text.splitlines()) == 10  # 6 lines, 2 tables of a header and a row


def _event(kind: str, from_: str, to: str, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "sref": "jobs/7", "from": from_, "to": to, **more}


@pytest.mark.parametrize(
    ("event", "text", "colour"),
    [
        (_event("transition", "running", "failed"), "running -> failed", "red"),
        (_event("transition", "new", "completed"), "new -> completed", "green"),
        (_event("transition", "pending", "running"), "pending -> running", ""),
        (
            _event("stuck", "running", "running", lasted=3 * 3600.0),
            "stuck in running for 3h",
            "yellow",
        ),
        (
            _event("missed", "", "missed", lasted=26 * 3600.0 + 60),
            "missed: no start for 1d 2h",
            "yellow",
        ),
        (_event("recovered", "running", "completed"), "recovered: running -> completed", "green"),
        (_event("flaky", "failed", "completed"), "flaky: failed, its rerun completed", ""),
        (
            _event("regressed", "completed", "jobTemplates/1|chrome|onLoad|https://x/a?b|c"),
            "regressed: onLoad of https://x/a?b|c (chrome)",
            "yellow",
        ),
        (
            _event("improved", "completed", "jobTemplates/1|firefox|speedIndex|https://x/"),
            "improved: speedIndex of https://x/ (firefox)",
            "green",
        ),
    ],
)
def test_each_event_kind_is_said_in_words(event: dict[str, Any], text: str, colour: str) -> None:
    """No "missed -> missed" or "running -> running": each kind reads as what it was."""
    assert status.event_text(event) == (text, colour)


def test_status_lists_events_in_columns_with_their_age() -> None:
    """One timestamp format, an age beside it, and a missed event under its template."""
    data: dict[str, Any] = {
        "exists": True,
        "state": "state.db",
        "last_poll": "2026-01-01T02:57:00+00:00",
        "jobs_known": 2,
        "jobs_followed": 1,
        "outbox": {"pending": 0, "sent": 2, "given_up": 0},
        "recent_events": [
            {
                **_event("stuck", "running", "running", lasted=10800.0),
                "at": "2026-01-01T02:57:00+00:00",
            },
            {
                **_event("missed", "", "missed", lasted=93600.0),
                "sref": "",
                "template": "jobTemplates/6789",
                "at": "2026-01-01T01:00:00+00:00",
            },
        ],
        "pending": [],
        "given_up": [],
    }
    assert status.status_text(data, NOW).splitlines() == [
        "state: state.db",
        "last successful poll: 2026-01-01 02:57:00 (3 min ago)",
        "jobs known: 2, being followed: 1",
        "outbox: 0 pending, 2 sent, 0 given up",
        "recent events:",
        "  WHEN (UTC)           AGO        SUBJECT            EVENT",
        "  2026-01-01 02:57:00  3 min ago  jobs/7             stuck in running for 3h",
        "  2026-01-01 01:00:00  2h ago     jobTemplates/6789  missed: no start for 1d 2h",
    ]
