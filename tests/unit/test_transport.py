"""transport's pure parts: what counts as the same origin, and how a URL is shown."""

from __future__ import annotations

import pytest
from yarl import URL

from watcher.transport import origin, shown

HOME = URL("https://api.pa.eggplant.cloud/pa/v1")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.pa.eggplant.cloud/authorisation/token",
        "https://API.PA.Eggplant.Cloud/pa/v1/jobs?page=2",
        "https://api.pa.eggplant.cloud:443/pa/v2/jobs",
    ],
)
def test_same_scheme_host_and_port_is_the_same_origin(url: str) -> None:
    """Path, query and letter case do not matter; port 443 is https's own."""
    assert origin(URL(url)) == origin(HOME)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.pa.eggplant.cloud/pa/v1/jobs",  # a downgrade to plain HTTP
        "https://api.pa.eggplant.cloud:8443/pa/v1/jobs",
        "https://evil.example/pa/v1/jobs",
        "https://api.pa.eggplant.cloud.evil.example/pa/v1/jobs",
        "https://evil.example@api.pa.eggplant.cloud.evil.example/",
    ],
)
def test_another_scheme_host_or_port_is_another_origin(url: str) -> None:
    """Anything else is another origin: no credential goes there."""
    assert origin(URL(url)) != origin(HOME)


def test_shown_drops_userinfo_query_and_fragment() -> None:
    """Where secrets travel in a URL is left out of messages."""
    url = URL("https://user:pa55@evil.example:8443/pa/v1/jobs?sig=abc&token=t#frag")
    assert shown(url) == "https://evil.example:8443/pa/v1/jobs"


def test_shown_cuts_a_long_url() -> None:
    """A Location of any length makes a message of one line."""
    text = shown(URL("https://evil.example/" + "a" * 10_000))
    assert len(text) == 203
    assert text.endswith("...")
