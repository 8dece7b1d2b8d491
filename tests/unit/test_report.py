"""What `watcher check` prints about channels: URLs masked, no secret of any channel kind."""

from __future__ import annotations

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
