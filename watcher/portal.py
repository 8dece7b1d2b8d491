"""Links to a job in the Performance Analyzer portal, from a configured pattern.

The portal's addresses are not part of the API's documentation, so the pattern is the
user's (`api.portal_url`, e.g. `https://portal.example.com/jobs/{id}`): here it is
checked once, and filled in for a job when its message is rendered. Pure.
"""

from __future__ import annotations

import string
from urllib.parse import quote, urlsplit

# {id}: the job's id (12345), {sref}: its self reference (jobs/12345), {template}: its
# template's id (6789).
PLACEHOLDERS = ("id", "sref", "template")
_FORMATTER = string.Formatter()


def problem(pattern: str) -> str | None:
    """Why `pattern` cannot make portal links, or None: it must be an http(s) URL with
    a host of its own, and use only the placeholders, each bare (`{id}`, not `{id!r}`
    or `{id:>9}`)."""
    try:
        parsed = list(_FORMATTER.parse(pattern))
        fields = [(name, spec, conv) for _, name, spec, conv in parsed if name is not None]
    except ValueError as exc:
        return f"{pattern!r}: {exc} (write a literal brace as {{{{ or }}}})"
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            return f"{pattern!r}: unknown placeholder {{{name}}}; use {allowed}"
        if spec or conversion:
            return f"{pattern!r}: write {{{name}}} bare, without a conversion or format spec"
    parts = urlsplit(pattern)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{pattern!r} is not an http(s) URL"
    # The host is the user's: a job's data may fill in the path, never where it points.
    if "{" in parts.netloc or "@" in parts.netloc:
        return f"{pattern!r}: the host must be written out, without placeholders or credentials"
    return None


def url(pattern: str, sref: str, template: str) -> str:
    """The portal link of a job (`sref`, `template`: as the API gives them), or "" when
    there is no pattern or the pattern needs a value the job has not got (a missed
    run has no job). Values are percent-encoded: the API's data cannot end the path."""
    if not pattern:
        return ""
    values = {
        "id": quote(sref.rsplit("/", 1)[-1], safe=""),
        "sref": quote(sref, safe="/"),
        "template": quote(template.rsplit("/", 1)[-1], safe=""),
    }
    used = {name for _, name, _, _ in _FORMATTER.parse(pattern) if name}
    if any(not values[name] for name in used):
        return ""
    return pattern.format(**values)
