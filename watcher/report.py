"""What `watcher check` prints, with every secret masked, and the secrets themselves
(for the logs' redaction). Reads the settings only: `watcher.status` reads the state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote, unquote

from watcher.config import Loaded
from watcher.logs import MASK, Redactor, escape_controls, hide_arguments, url_secrets
from watcher.provenance import origins
from watcher.settings import ApiSettings, Rule, Settings

# libpq's URL: user info ends at the first "@" before any "/"; a password may also be a
# query parameter (any connection keyword may).
_DATABASE_PASSWORD = re.compile(r"(?P<head>^[^:/?#]+://[^:@/]*:)(?P<password>[^@/]*)(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl)?password=)(?P<password>[^&#]*)", re.I)


def database_secrets(url: str) -> set[str]:
    """The passwords inside a PostgreSQL URL, as written and URL-decoded."""
    found = {m["password"] for m in _DATABASE_PASSWORD.finditer(url)}
    found |= {m["password"] for m in _QUERY_PASSWORD.finditer(url)}
    return {form for secret in found for form in (secret, unquote(secret), quote(secret, safe=""))}


def masked_database_url(url: str) -> str:
    """A PostgreSQL URL with its passwords masked: `postgresql://watcher:***@db/watcher`."""
    masked = _DATABASE_PASSWORD.sub(rf"\g<head>{MASK}", url)
    return _QUERY_PASSWORD.sub(rf"\g<head>{MASK}", masked)


def secrets(settings: Settings) -> list[str]:
    """Every configured value that must never be printed or logged: each account's client
    secret and token (from files too), the database password, the API's token, channels'
    credentials."""
    found: list[str] = []
    for api in settings.accounts_resolved().values():
        for secret in (api.client_secret, api.access_token):
            if secret is not None:
                found.append(secret.get_secret_value())
    if settings.state.url is not None:
        found.extend(database_secrets(settings.state.url.get_secret_value()))
    if settings.server.api_token is not None:
        found.append(settings.server.api_token.get_secret_value())
    for urls in settings.channels.values():
        for url in urls:
            found.extend(url_secrets(url))
    return found


def masked_url(url: str, redactor: Redactor | None = None) -> str:
    """apprise's private form of the URL, with what apprise leaves readable masked too:
    the values of plugin arguments (custom headers, `+Authorization=...`) and any of the
    URL's secrets (`redactor`, if given, must know them)."""
    from watcher.plugins import target  # deferred: apprise is only needed here

    urls = target(url).urls(privacy=True)
    if not urls:
        return "(invalid URL)"
    return (redactor or Redactor(url_secrets(url))).known(hide_arguments(urls[0]))


def matchers(rule: Rule) -> str:
    """A rule's matchers as `key=value` words, in the order they are written in SPEC."""
    m = rule.match
    parts = [f"event={m.event.value}"]
    for name in type(m).model_fields:
        if name == "event" or name not in m.model_fields_set:
            continue
        value = getattr(m, name)
        shown = (
            "|".join(value)
            if isinstance(value, list)
            else f"{value:g}s"
            if isinstance(value, float)
            else str(value)
        )
        if name == "schedule":
            shown = f'"{value}" timezone={m.timezone}'  # the zone shown even when UTC by default
        elif name == "timezone":
            continue
        parts.append(f"{name.rstrip('_')}={shown}")
    return " ".join(parts)


def _account(name: str, api: ApiSettings) -> str:
    auth = "fixed access token" if api.access_token else f"client credentials ({api.client_id})"
    return f"  {name}: {api.base_url} realm={api.realm} auth={auth} tls_verify={api.verify_tls}"


def state_label(settings: Settings) -> str:
    """Where the state is, for a log line: the SQLite path or the masked URL."""
    url = settings.state.url
    return str(settings.state.path) if url is None else masked_database_url(url.get_secret_value())


def _store(settings: Settings) -> list[str]:
    state, ha = settings.state, settings.ha
    if state.url is None:
        lines = [f"state: SQLite {state.path}"]
        if "ha" in settings.model_fields_set:
            lines.append("ha: ignored with SQLite (one process; it applies with state.url)")
        return lines
    return [
        f"state: PostgreSQL {masked_database_url(state.url.get_secret_value())}",
        f"ha: replica {ha.replica}, lease {ha.lease:g}s",
    ]


_CHOSEN = {
    "-c": "given with -c",
    "WATCHER_CONFIG": "named by WATCHER_CONFIG",
    "default": "the first default path that exists",
}


def provenance(loaded: Loaded, env: Mapping[str, str]) -> list[str]:
    """Which file was read, and where each secret came from (never the secret)."""
    where = f"file: {loaded.path.resolve()} ({_CHOSEN[loaded.chosen_by]})"
    found = origins(loaded, env)
    return [
        where,
        "secrets (where each came from; values are never shown):",
        *(f"  {o.key}: {o.source}" for o in found),
        *([] if found else ["  (none)"]),
    ]


def summary(settings: Settings, provenance: Sequence[str] = ()) -> str:
    poll = settings.poll
    lines = [
        "configuration is valid",
        *provenance[:1],
        "accounts:",
        *(_account(name, api) for name, api in settings.accounts_resolved().items()),
        f"poll: every {poll.interval:g}s, first poll looks back {poll.lookback:g}s, "
        f"overlap {poll.overlap:g}s, catch-up at most {poll.max_catch_up:g}s, "
        f"alert on first run: {poll.alert_on_first_run}",
        *_store(settings),
        "channels:",
    ]
    redactor = Redactor(secrets(settings))  # one for all channels: one regex, not one each
    for name, urls in sorted(settings.channels.items()):
        lines.extend(f"  {name}: {masked_url(url, redactor)}" for url in urls)
    if not settings.channels:
        lines.append("  (none: alerts are recorded but not sent)")
    lines.append("rules:")
    for rule in settings.rules:
        options = [
            o
            for o, on in (
                ("stop", rule.stop),
                ("test runs", rule.include_test_runs),
                ("drop if resolved", rule.drop_if_resolved),
            )
            if on
        ]
        if rule.repeat_after:
            options.append(f"repeat after {rule.repeat_after:g}s")
        extra = f" ({', '.join(options)})" if options else ""
        lines.append(
            f"  {rule.name}: {matchers(rule)} -> {', '.join(rule.notify)} "
            f"[{rule.severity.value}]{extra}"
        )
    if not settings.rules:
        lines.append("  (none: no event will alert)")
    delivery = settings.delivery
    lines.append(
        f"delivery: group_wait {delivery.group_wait:g}s, retry {delivery.retry_initial:g}s"
        f"..{delivery.retry_max:g}s, give up after {delivery.give_up_after:g}s"
    )
    for window in delivery.quiet_hours:
        lines.append(
            f"  quiet {','.join(window.days)} {window.start}-{window.end} {window.timezone}"
            f" holds {'|'.join(window.severities)}"
        )
    lines += provenance[1:]
    return "\n".join(map(escape_controls, lines))
