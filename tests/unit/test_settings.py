"""Settings: durations and the validation the configuration tree does on its own."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from watcher.settings import (
    ApiSettings,
    DeliverySettings,
    Match,
    PollSettings,
    Rule,
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
