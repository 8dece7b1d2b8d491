"""Portal links: the configured pattern is checked once and filled in per job."""

from __future__ import annotations

import pytest

from watcher.portal import problem, url


@pytest.mark.parametrize(
    "pattern",
    [
        "https://portal.example.com/jobs/{id}",
        "http://portal.internal:8080/#/jobs/{sref}?template={template}",
        "https://portal.example.com/templates/{template}/{{literal}}",
    ],
)
def test_good_patterns_pass(pattern: str) -> None:
    assert problem(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("https://p.example.com/{job}", "unknown placeholder {job}; use {id}, {sref}, {template}"),
        ("https://p.example.com/{}", "unknown placeholder {}"),
        ("https://p.example.com/{id.real}", "unknown placeholder {id.real}"),
        ("https://p.example.com/{id!r}", "write {id} bare"),
        ("https://p.example.com/{id:>9}", "write {id} bare"),
        ("https://p.example.com/{id", "write a literal brace as {{ or }}"),
        ("ftp://p.example.com/{id}", "is not an http(s) URL"),
        ("portal.example.com/{id}", "is not an http(s) URL"),
        ("https://{id}.example.com/", "the host must be written out"),
        ("https://user:pw@p.example.com/{id}", "without placeholders or credentials"),
    ],
)
def test_bad_patterns_say_why(pattern: str, says: str) -> None:
    assert says in (problem(pattern) or "")


def test_a_job_fills_in_the_placeholders() -> None:
    pattern = "https://p.example.com/jobs/{id}?s={sref}&t={template}"
    assert url(pattern, "jobs/12345", "jobTemplates/6789") == (
        "https://p.example.com/jobs/12345?s=jobs/12345&t=6789"
    )


def test_values_from_the_api_cannot_leave_their_place() -> None:
    """A hostile id is percent-encoded: it cannot add a query, a fragment or a host."""
    got = url("https://p.example.com/jobs/{id}", "jobs/1?x=1#@evil.com", "")
    assert got == "https://p.example.com/jobs/1%3Fx%3D1%23%40evil.com"


@pytest.mark.parametrize(
    ("pattern", "sref", "template"),
    [
        ("", "jobs/1", "jobTemplates/2"),  # no pattern configured
        ("https://p.example.com/jobs/{id}", "", "jobTemplates/2"),  # a missed run: no job
        ("https://p.example.com/t/{template}", "jobs/1", ""),
    ],
)
def test_no_link_when_a_value_is_missing(pattern: str, sref: str, template: str) -> None:
    assert url(pattern, sref, template) == ""


def test_a_template_pattern_links_a_missed_run() -> None:
    assert url("https://p.example.com/t/{template}", "", "jobTemplates/2") == (
        "https://p.example.com/t/2"
    )
