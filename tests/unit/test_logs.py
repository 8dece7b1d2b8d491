"""Redaction: registered secrets and credential shapes are masked wherever they appear."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.logs import MASK, Redactor, url_secrets

SECRET = "s3cr3t-Value-91"
SLACK = "slack://TokenA/TokenB/TokenC/#chan"
JSON = "json://user:pass@127.0.0.1:8080/path"
MAILTOS = "mailtos://user:pass@example.com?to=x@example.com"


def redact(redactor: Redactor, **event: Any) -> dict[str, Any]:
    return dict(redactor(None, "info", dict(event)))


def test_registered_secret_is_masked_in_text() -> None:
    """A secret inside a longer string is replaced by the mask."""
    assert Redactor([SECRET]).text(f"token={SECRET}; done") == f"token={MASK}; done"


def test_registered_secret_is_masked_everywhere_in_the_event() -> None:
    """The processor masks secrets in the event text and in every field."""
    out = redact(Redactor([SECRET]), event=f"login {SECRET}", detail=SECRET)
    assert out == {"event": f"login {MASK}", "detail": MASK}


def test_secret_is_masked_in_nested_values() -> None:
    """Dicts and lists inside the event are walked."""
    out = redact(
        Redactor([SECRET]),
        event="x",
        request={"headers": {"X-Key": SECRET}, "args": [1, f"a{SECRET}b", (SECRET,)]},
    )
    assert out["request"] == {"headers": {"X-Key": MASK}, "args": [1, f"a{MASK}b", [MASK]]}


def test_other_values_are_stringified_and_masked() -> None:
    """A value of another type (an exception, say) is rendered as text, masked."""
    out = redact(Redactor([SECRET]), event="x", error=RuntimeError(f"bad {SECRET}"))
    assert out["error"] == f"bad {MASK}"


def test_plain_values_are_kept() -> None:
    """Numbers, booleans and None pass through unchanged."""
    out = redact(Redactor([SECRET]), event="x", n=3, ratio=0.5, ok=True, nothing=None)
    assert out == {"event": "x", "n": 3, "ratio": 0.5, "ok": True, "nothing": None}


def test_secrets_added_later_are_masked() -> None:
    """A secret learnt at run time (a fresh token) is masked from then on."""
    redactor = Redactor()
    redactor.add("fresh-token-123")
    assert redactor.text("Token fresh-token-123") == f"Token {MASK}"


def test_short_secrets_are_not_registered() -> None:
    """Strings under four characters are not masked (they would garble every line)."""
    assert Redactor(["abc", ""]).text("abc def") == "abc def"


def test_longest_secret_is_masked_first() -> None:
    """A URL is masked whole, not left with its parts around masks."""
    redactor = Redactor(url_secrets(MAILTOS))
    assert redactor.text(f"sending to {MAILTOS}") == f"sending to {MASK}"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("Authorization: Bearer xyz.abc-123", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic Y2xpZW50OnNlY3JldA==", f"Authorization: Basic {MASK}"),
        ("header bearer abc", f"header bearer {MASK}"),
        ("GET https://user:pass@host/x", f"GET https://user:{MASK}@host/x"),
        ("to json://hookuser:hook-pw@127.0.0.1:80/h", f"to json://hookuser:{MASK}@127.0.0.1:80/h"),
        ('{"access_token": "abc123"}', f'{{"access_token": "{MASK}"}}'),
        ("client_secret=abc&x=1", f"client_secret={MASK}&x=1"),
        ("password: hunter22", f"password: {MASK}"),
    ],
)
def test_credential_shapes_are_masked_without_registration(line: str, masked: str) -> None:
    """Bearer and Basic credentials, URL passwords and secret-named fields are masked."""
    assert Redactor().text(line) == masked


def test_text_without_secrets_is_unchanged() -> None:
    """An ordinary line goes through as it was."""
    line = "poll_done jobs=12 window=2024-03-01T10:00:00+00:00 https://api.example.com/pa/v1"
    assert Redactor([SECRET]).text(line) == line


@pytest.mark.parametrize(
    ("url", "credentials", "not_credentials"),
    [
        (SLACK, {"TokenA"}, {"chan", "#chan", "slack"}),
        (
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#perf-alerts",
            {"T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7F"},
            {"perf-alerts", "#perf-alerts"},
        ),
        (JSON, {"user", "pass"}, {"127.0.0.1", "8080"}),
        (MAILTOS, {"user", "pass"}, {"example.com", "x@example.com"}),
        (
            "pagerduty://IntegrationKey123@ApiKey456",
            {"IntegrationKey123", "ApiKey456"},
            set(),
        ),
        (
            "ntfy://user:pw-9876@ntfy.example.com/topic-name?token=tk-123456",
            {"pw-9876", "tk-123456"},
            {"ntfy.example.com"},
        ),
    ],
    ids=["slack-spec", "slack-real", "json", "mailtos", "pagerduty", "ntfy"],
)
def test_url_secrets_returns_the_credential_parts(
    url: str, credentials: set[str], not_credentials: set[str]
) -> None:
    """The parts that may be credentials are returned as written; host names are not."""
    found = url_secrets(url)
    assert credentials <= found
    assert not (not_credentials & found)


@pytest.mark.parametrize("url", [SLACK, JSON, MAILTOS])
def test_url_secrets_include_the_whole_url(url: str) -> None:
    """The URL itself is one of the secrets, so it is masked whole."""
    assert url in url_secrets(url)


def test_url_secrets_of_a_broken_url_is_the_url() -> None:
    """A URL that cannot be split is masked as a whole."""
    assert url_secrets("json://[broken") == {"json://[broken"}


def test_slack_tokens_are_masked_in_a_log_line() -> None:
    """Each slack token quoted on its own in a log line is masked."""
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#perf-alerts"
    line = Redactor(url_secrets(url)).text("tokens T1JJ3T3L2 A1BRTD4JD TIiajkdnlazkcOXrIdevi7F")
    assert line == f"tokens {MASK} {MASK} {MASK}"
