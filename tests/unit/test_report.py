"""What `watcher check` prints about channels: URLs masked, no secret of any channel kind."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import structlog
import yaml

from tests.e2e import proc
from tests.unit.test_logs import CHANNELS, Channel, leaks
from watcher import logs, report
from watcher.settings import Settings

NOW = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)

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
    settings = Settings.model_validate(
        {"api": {"realm": "r", "access_token": "t"}, "state": {"path": str(path)}}
    )
    assert report.status(settings) == {"state": str(path), "exists": False}


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
        text = report.status_text(data, NOW, colour=colour)
        assert not set("\u202e\u2066\r") & set(text), text
        assert "\x1b[2J" not in text
        assert "Nightly \\u202egnp.exe \\x1b[2J\\r\\nforged failed" in text
        assert "jobs/1\\u2066" in text
        assert len(text.splitlines()) == 10  # 6 lines, 2 tables of a header and a row


# -- scale-out: the database URL, accounts, ha ----------------------------------------------

PG_PASSWORD = "pg-PASS-7b1c2d"
UK_SECRET = "uk-SECRET-3e4f5a"
DE_TOKEN = "de-TOKEN-6b7c8d"
FILE_SECRET = "file-SECRET-9e0f1a"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql://watcher:{PG_PASSWORD}@db:5432/watcher",
            "postgresql://watcher:***@db:5432/watcher",
        ),
        (
            f"postgres://watcher:{PG_PASSWORD}@db1:5432,db2:5432/watcher?target_session_attrs=any",
            "postgres://watcher:***@db1:5432,db2:5432/watcher?target_session_attrs=any",
        ),
        (
            "postgresql://watcher:p%40ss%3Aw0rd@db/watcher",
            "postgresql://watcher:***@db/watcher",
        ),
        (
            f"postgresql://db/watcher?user=watcher&password={PG_PASSWORD}&sslmode=require",
            "postgresql://db/watcher?user=watcher&password=***&sslmode=require",
        ),
        (
            f"postgresql://w:{PG_PASSWORD}@db/w?sslpassword={PG_PASSWORD}x",
            "postgresql://w:***@db/w?sslpassword=***",
        ),
        ("postgresql://watcher@db/watcher", "postgresql://watcher@db/watcher"),
        (
            "postgresql:///watcher?host=/run/postgresql",
            "postgresql:///watcher?host=/run/postgresql",
        ),
    ],
)
def test_masked_database_url_hides_passwords_only(url: str, shown: str) -> None:
    """The URL as `check` prints it: user, hosts, database and options readable, every
    password (in the user info or a query parameter) masked."""
    assert report.masked_database_url(url) == shown


def test_database_secrets_are_the_password_in_every_written_form() -> None:
    """The password as written and decoded, for the log pipeline to mask."""
    found = report.database_secrets("postgresql://watcher:p%40ss%3Aw0rd@db/watcher")
    assert {"p%40ss%3Aw0rd", "p@ss:w0rd"} <= found
    assert not {"watcher", "db"} & found
    assert report.database_secrets("postgresql://watcher@db/watcher") == set()


def scale_out(tmp_path: Path, **changes: Any) -> Settings:
    secret_file = tmp_path / "uk"
    secret_file.write_text(FILE_SECRET, encoding="utf-8")
    return Settings(
        **{
            "api": {"client_id": "shared-id", "client_secret": CLIENT_SECRET},
            "accounts": {
                "shop-uk": {"realm": "uk-realm", "client_secret": UK_SECRET},
                "shop-de": {"realm": "de-realm", "access_token": DE_TOKEN},
                "shop-fr": {
                    "realm": "fr-realm",
                    "base_url": "https://fr.example.com/pa/v1",
                    "client_secret_file": str(secret_file),
                },
            },
            "state": {"url": f"postgresql://watcher:{PG_PASSWORD}@db.internal:5432/watcher"},
            "ha": {"lease": "45s", "replica": "web-1"},
            **changes,
        }
    )


def test_secrets_hold_every_account_s_and_the_database_password(tmp_path: Path) -> None:
    """Each account's client secret or token (a secret file's content too) and the
    database password reach the log pipeline."""
    found = set(report.secrets(scale_out(tmp_path)))
    assert {UK_SECRET, DE_TOKEN, FILE_SECRET, PG_PASSWORD} <= found


def test_secrets_hold_an_inherited_secret(tmp_path: Path) -> None:
    """A secret that accounts take from the api block is theirs."""
    settings = scale_out(tmp_path, accounts={"a": {"realm": "a"}, "b": {"realm": "b"}})
    assert CLIENT_SECRET in report.secrets(settings)


def test_summary_lists_accounts_the_store_and_ha(tmp_path: Path) -> None:
    """check's summary: each account (name, base URL, realm), PostgreSQL with its URL
    masked, and this replica's name and lease."""
    text = report.summary(scale_out(tmp_path))
    lines = text.splitlines()
    start = lines.index("accounts:")
    assert lines[start + 1 : start + 4] == [
        "  shop-uk: https://api.pa.eggplant.cloud/pa/v1 realm=uk-realm"
        " auth=client credentials (shared-id) tls_verify=True",
        "  shop-de: https://api.pa.eggplant.cloud/pa/v1 realm=de-realm"
        " auth=fixed access token tls_verify=True",
        "  shop-fr: https://fr.example.com/pa/v1 realm=fr-realm"
        " auth=client credentials (shared-id) tls_verify=True",
    ]
    assert "state: PostgreSQL postgresql://watcher:***@db.internal:5432/watcher" in lines
    assert "ha: replica web-1, lease 45s" in lines
    for secret in (PG_PASSWORD, UK_SECRET, DE_TOKEN, FILE_SECRET, CLIENT_SECRET):
        assert secret not in text


def test_summary_of_one_account_and_sqlite(tmp_path: Path) -> None:
    """Without accounts, the api block is listed as the account default; SQLite's path is
    the store; no ha line when ha is not given."""
    lines = report.summary(settings()).splitlines()
    start = lines.index("accounts:")
    assert lines[start + 1].startswith(
        "  default: https://api.pa.eggplant.cloud/pa/v1 realm=my-realm"
    )
    assert "state: SQLite watcher-state.db" in lines
    assert not [line for line in lines if line.startswith("ha:")]


def test_summary_says_ha_is_ignored_with_sqlite() -> None:
    """ha given beside SQLite is accepted, and check says it does nothing."""
    base = settings()
    with_ha = Settings(api=base.api.model_dump(), ha={"lease": "1m"})
    assert "ha: ignored with SQLite (one process; it applies with state.url)" in (
        report.summary(with_ha).splitlines()
    )


def test_the_database_password_never_reaches_a_log_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the configured pipeline, with what the CLI registers: the password is masked
    wherever it appears (the URL, a driver's message, a bare value), host and user stay."""
    settings = scale_out(tmp_path)
    logs.protect(*report.secrets(settings))
    assert settings.state.url is not None
    url = settings.state.url.get_secret_value()
    capsys.readouterr()
    log = structlog.get_logger("watcher")
    log.warning("store_unreachable", url=url, error=f"connection to db failed: {url}")
    log.warning("odd_line", detail=f"pw is {PG_PASSWORD}.", nested={"dsn": [url]})
    out = capsys.readouterr().out
    assert out.count("\n") == 2, out
    assert PG_PASSWORD not in out, out
    assert "postgresql://watcher:***@db.internal:5432/watcher" in out


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
    assert report.event_text(event) == (text, colour)


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
    assert report.status_text(data, NOW).splitlines() == [
        "state: state.db",
        "last successful poll: 2026-01-01 02:57:00 (3 min ago)",
        "jobs known: 2, being followed: 1",
        "outbox: 0 pending, 2 sent, 0 given up",
        "recent events:",
        "  WHEN (UTC)           AGO        SUBJECT            EVENT",
        "  2026-01-01 02:57:00  3 min ago  jobs/7             stuck in running for 3h",
        "  2026-01-01 01:00:00  2h ago     jobTemplates/6789  missed: no start for 1d 2h",
    ]
