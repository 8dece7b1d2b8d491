"""Settings: durations and the validation the configuration tree does on its own."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from watcher import cron
from watcher.settings import (
    ApiSettings,
    DeliverySettings,
    HaSettings,
    Match,
    PollSettings,
    Rule,
    Settings,
    StateSettings,
    parse_duration,
)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (45, 45.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
        ("5M", 300.0),
        (" 10s ", 10.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration_reads(value: object, seconds: float) -> None:
    """Numbers are seconds; text is one or more number+unit parts (ms, s, m, h, d)."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["", "  ", "m", "5x", "five minutes", "5m30", "1e3", "s5", "5 minutes", "nan", None, [5], {}],
)
def test_parse_duration_rejects_what_is_not_a_duration(value: object) -> None:
    """Anything else is an error that shows the accepted forms."""
    with pytest.raises(ValueError, match=r"is not a duration \(use seconds, or 90s, 5m, 2h, 1d\)"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_booleans(value: bool) -> None:
    """YAML's yes/no are not durations, although bool is an int to Python."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.5, "-5s", "-5"])
def test_parse_duration_rejects_negative(value: object) -> None:
    """A negative duration is an error."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_parse_duration_negative_number_says_so() -> None:
    """A negative number is refused as negative, not as unreadable."""
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(-30)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_parse_duration_rejects_non_finite_numbers(value: float) -> None:
    """YAML's .inf and .nan are not durations (a timedelta cannot hold them)."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_duration_fields_accept_text() -> None:
    """Every duration field of a section takes the text forms."""
    poll = PollSettings.model_validate({"interval": "90s", "lookback": "2h", "follow_for": "1d"})
    assert (poll.interval, poll.lookback, poll.follow_for) == (90.0, 7200.0, 86400.0)


def test_poll_interval_must_be_positive() -> None:
    """A zero interval would spin: it is refused."""
    with pytest.raises(ValidationError):
        PollSettings.model_validate({"interval": "0s"})


def test_retry_initial_must_be_positive() -> None:
    """Backoff from zero would never grow: retry_initial must be above zero."""
    with pytest.raises(ValidationError):
        DeliverySettings.model_validate({"retry_initial": 0})


def test_match_from_accepts_new() -> None:
    """`new` is a valid previous status (a first sighting)."""
    assert Match.model_validate({"from": ["new", "pending"]}).from_ == ["new", "pending"]


def test_match_to_refuses_new() -> None:
    """`new` is never a job's new status."""
    with pytest.raises(ValidationError, match="'new' is not a job status"):
        Match.model_validate({"to": "new"})


def test_rule_needs_a_channel() -> None:
    """A rule that notifies nobody is an error."""
    with pytest.raises(ValidationError):
        Rule.model_validate({"name": "r", "notify": []})


def test_rule_defaults() -> None:
    """A minimal rule matches every transition at failure severity and does not stop."""
    r = Rule.model_validate({"name": "r", "notify": "ops"})
    assert (r.notify, str(r.severity), r.stop, r.match.to) == (["ops"], "failure", False, [])


@pytest.mark.parametrize("key", ["title", "body"])
def test_rule_templates_are_checked(key: str) -> None:
    """A rule's title and body must be valid templates."""
    doc: dict[str, Any] = {"name": "r", "notify": "ops", key: "{{ job.nope }}"}
    with pytest.raises(ValidationError, match="invalid template"):
        Rule.model_validate(doc)


URL_PASSWORD = "url-PASS-5e6f7a"


@pytest.mark.parametrize("key", ["base_url", "token_url"])
@pytest.mark.parametrize(
    "url",
    [
        f"https://proxy:{URL_PASSWORD}@api.example.com/pa/v1",
        f"https://{URL_PASSWORD}@api.example.com/pa/v1",
        f"ftp://user:{URL_PASSWORD}@api.example.com/pa/v1",
    ],
)
def test_api_urls_with_credentials_are_refused_without_echo(key: str, url: str) -> None:
    """Credentials inside base_url or token_url would make every request fail (aiohttp
    refuses them beside our Authorization header): refused, naming the key, not the value."""
    api = {"realm": "r", "access_token": "tok", key: url}
    with pytest.raises(ValidationError) as caught:
        ApiSettings.model_validate(api)
    (problem,) = caught.value.errors()
    assert problem["loc"] == (key,)
    assert "credentials" in problem["msg"]
    assert URL_PASSWORD not in str(caught.value)


def test_api_url_that_is_not_http_is_named() -> None:
    """A URL of another scheme (and no credentials) is still shown, to be corrected."""
    with pytest.raises(ValidationError, match=r"'ftp://api\.example\.com' is not an http"):
        ApiSettings.model_validate(
            {"realm": "r", "access_token": "t", "base_url": "ftp://api.example.com"}
        )


def test_api_url_that_does_not_parse_is_an_error() -> None:
    """A broken URL is a validation error, not a crash."""
    with pytest.raises(ValidationError, match="not a usable URL"):
        ApiSettings.model_validate({"realm": "r", "access_token": "t", "base_url": "https://[::1"})


# -- the store: SQLite at path, or PostgreSQL at url ---------------------------------------

DB_PASSWORD = "db-PASS-4c8e2a"


def test_state_defaults_to_sqlite_at_watcher_state_db() -> None:
    """Neither path nor url: SQLite at the default path, as before."""
    state = StateSettings()
    assert (state.backend, state.path, state.url) == ("sqlite", Path("watcher-state.db"), None)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_state_url_selects_postgresql(scheme: str) -> None:
    """A PostgreSQL URL alone selects PostgreSQL; path keeps its default, unused."""
    url = f"{scheme}://watcher:{DB_PASSWORD}@db.internal:5432/watcher"
    state = StateSettings.model_validate({"url": url})
    assert state.backend == "postgresql"
    assert state.url is not None
    assert state.url.get_secret_value() == url
    assert DB_PASSWORD not in repr(state)


def test_state_path_alone_is_sqlite() -> None:
    """A path alone is SQLite there."""
    state = StateSettings.model_validate({"path": "/var/lib/watcher/state.db"})
    assert (state.backend, state.path) == ("sqlite", Path("/var/lib/watcher/state.db"))


def test_state_path_and_url_together_are_refused() -> None:
    """Exactly one store: both given is an error of the state section."""
    with pytest.raises(ValidationError) as caught:
        StateSettings.model_validate({"path": "x.db", "url": "postgresql://db/watcher"})
    (problem,) = caught.value.errors()
    assert problem["loc"] == ()
    assert problem["msg"].endswith("give path (SQLite) or url (PostgreSQL), not both")


@pytest.mark.parametrize("url", ["", "  "])
def test_an_empty_state_url_is_not_given(url: str) -> None:
    """`url: ${DATABASE_URL:-}` with the variable unset leaves SQLite in place, beside a path."""
    state = StateSettings.model_validate({"path": "x.db", "url": url})
    assert (state.backend, state.url) == ("sqlite", None)


@pytest.mark.parametrize(
    ("url", "case"),
    [
        (f"mysql://watcher:{DB_PASSWORD}@db/watcher", ""),
        (f"POSTGRESQL://watcher:{DB_PASSWORD}@db/watcher", " (in lower case)"),
        (f"postgresql+psycopg://watcher:{DB_PASSWORD}@db/w", ""),
        (f"host=db user=watcher password={DB_PASSWORD}", ""),
        (f"watcher:{DB_PASSWORD}@db/watcher", ""),
        (f"{DB_PASSWORD}://db/watcher", ""),
    ],
)
def test_a_url_that_is_not_postgresql_is_refused_without_echo(url: str, case: str) -> None:
    """Only postgresql:// and postgres://, as libpq spells them; the error says so and
    shows nothing of the URL (what stands before :// may be a password too)."""
    with pytest.raises(ValidationError) as caught:
        StateSettings.model_validate({"url": url})
    (problem,) = caught.value.errors()
    assert problem["loc"] == ("url",)
    assert problem["msg"] == (
        f"Value error, not a PostgreSQL URL: it starts with postgresql:// or postgres://{case},"
        " e.g. postgresql://user:password@host:5432/database"
    )
    assert DB_PASSWORD not in str(caught.value)


# -- ha: leases and the replica's name --------------------------------------------------------


def test_ha_defaults() -> None:
    """A 30 s lease; the replica is named after the host and the process."""
    ha = HaSettings()
    assert ha.lease == 30.0
    assert ha.replica == f"{socket.gethostname()}-{os.getpid()}"


@pytest.mark.parametrize(("lease", "seconds"), [("3s", 3.0), ("90s", 90.0), ("1h", 3600.0)])
def test_ha_lease_within_bounds(lease: str, seconds: float) -> None:
    """From 3 s to 1 h, in the duration forms."""
    assert HaSettings.model_validate({"lease": lease}).lease == seconds


@pytest.mark.parametrize("lease", ["2s", "2.9", 0, "61m", "1d"])
def test_ha_lease_out_of_bounds_is_refused(lease: object) -> None:
    """Shorter than 3 s or longer than an hour is an error that gives the bounds."""
    with pytest.raises(ValidationError, match="must be at least 3s and at most 1h"):
        HaSettings.model_validate({"lease": lease})


def test_ha_replica_is_kept_without_surrounding_space() -> None:
    """A name from ${HOSTNAME} with a stray newline is the name."""
    assert HaSettings.model_validate({"replica": " web-1\n"}).replica == "web-1"


@pytest.mark.parametrize(
    ("replica", "problem"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("r" * 101, "at most 100 characters"),
        ("web\x1b[2J", "must be printable"),
        ("web\u202e1", "must be printable"),
    ],
)
def test_ha_replica_must_be_a_printable_name(replica: str, problem: str) -> None:
    """Empty, longer than 100 characters or holding control characters is refused."""
    with pytest.raises(ValidationError, match=problem):
        HaSettings.model_validate({"replica": replica})


def test_ha_replica_of_100_characters_is_fine() -> None:
    """The bound itself is allowed."""
    assert HaSettings.model_validate({"replica": "r" * 100}).replica == "r" * 100


# -- accounts -------------------------------------------------------------------------------

API = {"realm": "my-realm", "client_id": "cid", "client_secret": "secret-value"}


def test_without_accounts_the_api_block_is_the_account_default() -> None:
    """No accounts: one account, named default, which is the api block itself."""
    settings = Settings(api=API)
    assert settings.accounts == {}
    assert settings.accounts_resolved() == {"default": settings.api}
    assert settings.api.realm == "my-realm"


def test_an_account_takes_unset_keys_from_the_api_block() -> None:
    """Every key an account does not give is the top-level api block's (or the default)."""
    settings = Settings(
        api={"base_url": "https://pa.example.com/pa/v1", "client_id": "shared", "page_size": 50},
        accounts={
            "shop-uk": {"realm": "uk", "client_secret": "uk-secret"},
            "shop-de": {"realm": "de", "client_id": "de-id", "access_token": "de-token"},
        },
    )
    uk, de = settings.accounts_resolved().values()
    assert list(settings.accounts_resolved()) == ["shop-uk", "shop-de"]
    assert (uk.realm, uk.client_id, uk.base_url, uk.page_size) == (
        "uk",
        "shared",
        "https://pa.example.com/pa/v1",
        50,
    )
    assert (de.realm, de.client_id, de.page_size, de.timeout) == ("de", "de-id", 50, 30.0)
    assert de.access_token is not None
    assert de.access_token.get_secret_value() == "de-token"


def test_with_accounts_api_is_the_first_account() -> None:
    """Code that serves one account reads `api`: it is the first account, merged."""
    settings = Settings(
        api={"client_id": "cid", "client_secret": "s3cret"},
        accounts={"b": {"realm": "b-realm"}, "a": {"realm": "a-realm"}},
    )
    assert settings.api == settings.accounts["b"]
    assert settings.api.realm == "b-realm"


def test_an_account_s_secret_file_replaces_an_inherited_secret(tmp_path: Path) -> None:
    """A secret an account gives, in either form, replaces the top-level one in both
    forms: client_secret_file beside an inherited client_secret is not "both"."""
    secret_file = tmp_path / "uk"
    secret_file.write_text("uk-file-secret\n", encoding="utf-8")
    settings = Settings(
        api={"client_id": "cid", "client_secret": "shared-secret"},
        accounts={
            "shop-uk": {"realm": "uk", "client_secret_file": str(secret_file)},
            "shop-de": {"realm": "de"},
        },
    )
    uk, de = settings.accounts_resolved().values()
    assert uk.client_secret is not None
    assert de.client_secret is not None
    assert uk.client_secret.get_secret_value() == "uk-file-secret"
    assert de.client_secret.get_secret_value() == "shared-secret"


@pytest.mark.parametrize("name", ["shop-uk", "a", "0", "shop_uk_2", "9-lives", "x" * 63])
def test_account_names_that_are_fine(name: str) -> None:
    """1 to 63 of a-z, 0-9, _ and -, starting with a letter or a digit."""
    assert list(Settings(api=API, accounts={name: {}}).accounts_resolved()) == [name]


@pytest.mark.parametrize("name", ["", "Shop-UK", "-shop", "_shop", "shop uk", "shop.uk", "x" * 64])
def test_account_names_that_are_refused(name: str) -> None:
    """Anything else is refused at `accounts`, the name shown so that it can be found."""
    with pytest.raises(ValidationError) as caught:
        Settings(api=API, accounts={name: {}})
    (problem,) = caught.value.errors()
    assert problem["loc"] == ("accounts",)
    assert f"{name!r} is not an account name (1 to 63 of a-z, 0-9, _ and -" in problem["msg"]


def test_at_most_100_accounts() -> None:
    """100 accounts are fine; 101 are refused before any is validated."""
    hundred = {f"a{i}": {} for i in range(100)}
    assert len(Settings(api=API, accounts=hundred).accounts_resolved()) == 100
    with pytest.raises(ValidationError, match="101 accounts; at most 100 are supported"):
        Settings(api=API, accounts={**hundred, "one-more": {}})


def test_match_account_takes_one_name_or_a_list() -> None:
    """Like the other matchers, a single name is a list of one."""
    assert Match.model_validate({"account": "shop-uk"}).account == ["shop-uk"]
    assert Match.model_validate({"account": ["a", "b"]}).account == ["a", "b"]
    assert Match().account == []


# -- missed: every or a cron schedule --------------------------------------------------------


def missed_match(**keys: Any) -> Match:
    return Match.model_validate({"event": "missed", "template": "jobTemplates/1", **keys})


def test_missed_schedule_with_a_time_zone() -> None:
    """`schedule` and `timezone` stand instead of `every`; the zone defaults to UTC."""
    match = missed_match(schedule="0 2 * * 1-5", timezone="Europe/London", grace="45m")
    assert (match.schedule, match.timezone, match.every, match.grace) == (
        "0 2 * * 1-5",
        "Europe/London",
        None,
        2700.0,
    )
    assert missed_match(schedule="30 1 * * *").timezone == "UTC"


# (case, match keys, the error's message)
MISSED_ERRORS = [
    (
        "every and schedule",
        {"every": "24h", "schedule": "0 2 * * *"},
        "schedule: give every or schedule, not both",
    ),
    ("neither", {}, "every: event missed needs every (e.g. 24h) or schedule"),
    ("timezone without schedule", {"every": "24h", "timezone": "UTC"}, "timezone: only with"),
    ("unknown zone", {"schedule": "0 2 * * *", "timezone": "Mars/Olympus"}, "'Mars/Olympus'"),
    ("four fields", {"schedule": "0 2 * *"}, "schedule: '0 2 * *' has 4 fields, not 5"),
    ("six fields", {"schedule": "0 0 2 * * *"}, "has 6 fields, not 5"),
    ("minute 61", {"schedule": "61 2 * * *"}, "schedule: '61 2 * * *' is not a cron expression"),
    ("hour 24", {"schedule": "0 24 * * *"}, "is not a cron expression"),
    ("a word", {"schedule": "daily"}, "has 1 fields, not 5"),
    ("weekday 8", {"schedule": "0 2 * * 8"}, "day of week '8' is not 0-7 or sun..sat"),
    ("weekday word", {"schedule": "0 2 * * monday"}, "day of week 'monday'"),
    ("backwards weekdays", {"schedule": "0 2 * * 5-1"}, "range '5-1' goes backwards"),
    ("weekday step 0", {"schedule": "0 2 * * */0"}, "step '0' is not a positive number"),
    ("day and weekday", {"schedule": "0 2 1 * mon"}, "gives both a day of month and a day of"),
    ("never fires", {"schedule": "0 2 30 2 *"}, "schedule: '0 2 30 2 *' never fires"),
]


@pytest.mark.parametrize(
    ("keys", "message"), [pytest.param(*case[1:], id=case[0]) for case in MISSED_ERRORS]
)
def test_missed_schedule_errors(keys: dict[str, Any], message: str) -> None:
    """Each row: a `missed` match that is refused at load, and what the error says."""
    with pytest.raises(ValidationError) as caught:
        missed_match(**keys)
    assert message in str(caught.value)


@pytest.mark.parametrize("key", ["schedule", "timezone"])
def test_schedule_keys_are_only_for_missed(key: str) -> None:
    """`schedule` and `timezone` on another event are errors naming the key."""
    with pytest.raises(ValidationError, match=f"{key}: only for event missed, not transition"):
        Match.model_validate({key: "0 2 * * *" if key == "schedule" else "UTC"})


# (case, crontab weekday field, the days APScheduler is given)
WEEKDAYS = [
    ("Monday to Friday by number", "1-5", "mon,tue,wed,thu,fri"),
    ("by name", "mon-fri", "mon,tue,wed,thu,fri"),
    ("Sunday is 0", "0", "sun"),
    ("Sunday is 7", "7", "sun"),
    ("a range up to Sunday as 0", "5-0", "sun,fri,sat"),
    ("a range up to Sunday as 7", "fri-7", "sun,fri,sat"),
    ("a list", "1,3,5", "mon,wed,fri"),
    ("a step", "*/2", "sun,tue,thu,sat"),
    ("a stepped range", "1-5/2", "mon,wed,fri"),
    ("every day", "*", "*"),
    ("all days by range", "0-6", "sun,mon,tue,wed,thu,fri,sat"),
]


@pytest.mark.parametrize(
    ("field", "days"), [pytest.param(*case[1:], id=case[0]) for case in WEEKDAYS]
)
def test_crontab_weekdays_are_translated(field: str, days: str) -> None:
    """Each row: APScheduler 3 numbers Monday 0, crontab Sunday 0: the day-of-week field is
    given to it as names, so `1-5` means Monday to Friday as in crontab."""
    assert str(cron.trigger(f"0 2 * * {field}").fields[4]) == days


@pytest.mark.parametrize(
    ("match", "severity"),
    [
        ({}, "failure"),
        ({"event": "recovered"}, "success"),
        ({"event": "stuck", "after": "2h"}, "warning"),
        ({"event": "missed", "every": "24h", "template": "jobTemplates/1"}, "warning"),
        ({"event": "regressed"}, "warning"),
        ({"event": "improved"}, "success"),
        ({"event": "flaky"}, "info"),
    ],
)
def test_a_rule_without_severity_takes_its_events(match: dict[str, Any], severity: str) -> None:
    """Unset, the severity fits the event: a recovery is good news, a stuck job a warning."""
    rule = Rule.model_validate({"name": "r", "notify": "ops", "match": match})
    assert str(rule.severity) == severity


@pytest.mark.parametrize("event", ["recovered", "flaky", "improved"])
def test_a_rules_own_severity_wins(event: str) -> None:
    """A severity the rule gives is kept, whatever the event."""
    rule = Rule.model_validate(
        {"name": "r", "notify": "ops", "match": {"event": event}, "severity": "failure"}
    )
    assert str(rule.severity) == "failure"


def test_a_rule_with_an_unknown_event_still_names_the_event() -> None:
    """The severity's default does not hide the event's own error."""
    with pytest.raises(ValidationError, match=r"match\.event"):
        Rule.model_validate({"name": "r", "notify": "ops", "match": {"event": "nope"}})


def test_accounts_inherit_a_secret_file_of_the_api_block(tmp_path: Path) -> None:
    """The api block's client_secret_file, shared by accounts, is read, not refused as
    "client_secret and client_secret_file both" when the block is validated again."""
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-1234")
    api = {"realm": "r", "client_id": "c", "client_secret_file": str(secret)}
    settings = Settings(api=api, accounts={"uk": {}, "us": {"realm": "us"}})
    found = [a.client_secret for a in settings.accounts_resolved().values()]
    assert [s.get_secret_value() if s else None for s in found] == ["from-a-file-1234"] * 2
