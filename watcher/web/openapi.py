"""The OpenAPI 3.1 document of the API (served at /api/v1/openapi.json): every route of
`api.ROUTES`, its parameters, its body, its answers, and the bearer scheme for writes.
A test checks that the document and the application's routes are the same set."""

from __future__ import annotations

from functools import cache
from typing import Any

from watcher import __version__
from watcher.vocabulary import ALERT_STATES, SILENCE_KEYS

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = _nullable("string", format="date-time")
TEXT = {"type": "string", "maxLength": 1000}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "names the problem"}},
    },
    "Account": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "leader": _nullable("string", description="the replica polling it, if any"),
            "last_poll": TIME_OR_NULL,
        },
    },
    "Event": {
        "type": "object",
        "properties": {
            "kind": {"type": "string"},
            "sref": {"type": "string"},
            "from": _nullable("string"),
            "to": _nullable("string"),
            "at": TIME,
            "account": {"type": "string"},
            "template": {"type": "string"},
            "lasted": _nullable(
                "number",
                description="seconds: how long a stuck job had been in its status, or a"
                " missed template without a start",
            ),
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "replica": {"type": "string"},
            "shared": {"type": "boolean", "description": "PostgreSQL shared by replicas"},
            "accounts": _list("Account"),
            "outbox": {
                "type": "object",
                "properties": {"pending": {"type": "integer"}, "given_up": {"type": "integer"}},
            },
            "jobs": {
                "type": "object",
                "properties": {"known": {"type": "integer"}, "followed": {"type": "integer"}},
            },
            "recent_events": _list("Event"),
        },
    },
    "Step": {
        "type": "object",
        "properties": {
            "at": TIME,
            "what": {
                "type": "string",
                "description": "held, silenced, acked, attempt, sent, given_up, requeued,"
                " resolved, waiting, released, flaky, replaced",
            },
            "detail": _nullable("string"),
        },
    },
    "Alert": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "account": {"type": "string"},
            "rule": {"type": "string"},
            "channel": {"type": "string", "description": "the channel's name (never its URL)"},
            "severity": {"type": "string"},
            "kind": {"type": "string"},
            "job": _nullable("string"),
            "template": _nullable("string"),
            "status": _nullable("string"),
            "state": {
                "type": "string",
                "enum": list(ALERT_STATES),
            },
            "queued_at": TIME,
            "done_at": TIME_OR_NULL,
            "attempts": {"type": "integer"},
            "last_error": _nullable("string"),
            "steps": _list("Step"),
        },
    },
    "Run": {
        "type": "object",
        "properties": {
            "job": {"type": "string"},
            "name": _nullable("string"),
            "status": {"type": "string"},
            "started_at": TIME_OR_NULL,
        },
    },
    "Template": {
        "type": "object",
        "properties": {
            "account": {"type": "string"},
            "template": {"type": "string"},
            "name": _nullable("string"),
            "streak": {"type": "integer", "description": "failures in a row"},
            "last_start": TIME_OR_NULL,
            "runs": {**_list("Run"), "description": "recent runs, oldest first"},
            "last_alert": {"oneOf": [_ref("Alert"), {"type": "null"}]},
        },
    },
    "Series": {
        "type": "object",
        "description": "a series of test-run values: template, page URL, browser, metric",
        "properties": {
            "account": {"type": "string"},
            "template": {"type": "string"},
            "page_url": {"type": "string"},
            "browser": {"type": "string"},
            "metric": {"type": "string"},
            "unit": {"type": "string", "description": "s for timings, B for pageSize"},
            "updated_at": TIME,
            "regressions": {"type": "integer", "description": "regressions so far"},
            "state": {"type": "string", "enum": ["learning", "ok", "regressed", "unreadable"]},
            "latest": _nullable("number", description="the last value judged"),
            "median": _nullable("number", description="the baseline's; null while learning"),
            "limit": _nullable("number", description="a value above it is flagged"),
            "baseline_runs": {"type": "integer"},
            "min_runs": _nullable("integer", description="values needed for a verdict"),
            "recent": {
                "type": "array",
                "items": {"type": "number"},
                "description": "recent values, oldest first",
            },
        },
    },
    "Matcher": {
        "type": "object",
        "required": ["key", "value"],
        "additionalProperties": False,
        "properties": {
            "key": {"type": "string", "enum": list(SILENCE_KEYS)},
            "value": {**TEXT, "minLength": 1, "description": "a glob"},
        },
    },
    "Silence": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "matchers": _list("Matcher"),
            "starts_at": TIME,
            "ends_at": TIME,
            "author": {"type": "string"},
            "comment": {"type": "string"},
            "created_at": TIME_OR_NULL,
            "expired_at": TIME_OR_NULL,
            "state": {"type": "string", "enum": ["pending", "active", "expired"]},
        },
    },
    "NewSilence": {
        "type": "object",
        "description": "ends_at or duration (not both); at most 366 days",
        "required": ["matchers", "comment"],
        "additionalProperties": False,
        "properties": {
            "matchers": {
                "description": "a list of {key, value}, or an object of key: glob; a key"
                " given twice matches either value, different keys must all match",
                "oneOf": [
                    {**_list("Matcher"), "minItems": 1, "maxItems": 20},
                    {
                        "type": "object",
                        "propertyNames": {"enum": list(SILENCE_KEYS)},
                        "additionalProperties": {"type": "string"},
                    },
                ],
            },
            "starts_at": {**TIME, "description": "default: now"},
            "ends_at": TIME,
            "duration": {"type": "string", "examples": ["4h", "90m", "2d"]},
            "comment": {**TEXT, "minLength": 1},
            "author": {**TEXT, "description": "default: api"},
        },
    },
    "Ack": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "account": {"type": "string"},
            "job": _nullable("string"),
            "template": _nullable("string"),
            "status": _nullable("string"),
            "author": {"type": "string"},
            "comment": {"type": "string"},
            "created_at": TIME_OR_NULL,
            "expired_at": TIME_OR_NULL,
            "holds": {"type": "boolean"},
        },
    },
    "NewAck": {
        "type": "object",
        "description": "a job or a template (one of them), known to the watcher",
        "additionalProperties": False,
        "properties": {
            "job": {"type": "string", "examples": ["jobs/123"]},
            "template": {"type": "string", "examples": ["jobTemplates/6789"]},
            "account": {"type": "string", "description": "default: the only account"},
            "comment": TEXT,
            "author": {**TEXT, "description": "default: api"},
        },
    },
    "Requeued": {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "state": {"const": "pending"}},
    },
}

ERRORS = {
    "400": "a query parameter unknown or malformed; a body not JSON, or not an object",
    "401": "no bearer token, or not the configured one",
    "403": "no server.api_token is configured: writes are refused",
    "404": "no such silence, acknowledgement or alert",
    "409": "the alert is not given up",
    "413": "the body is over 64 KiB",
    "415": "the body is not application/json",
    "422": "the body is refused: unknown field or matcher key, end before start, ...",
    "503": "the state store cannot be reached",
}


def _error(code: str) -> dict[str, Any]:
    return {"description": ERRORS[code], "content": {JSON: {"schema": _ref("Error")}}}


def _param(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    required = where == "path"
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


ID = _param("id", "path", {"type": "integer", "minimum": 0}, "the id")
LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 2000}, "at most")
ALL = _param("all", "query", {"type": "boolean", "default": False}, "include those over too")


def _operation(
    summary: str,
    ok: tuple[str, dict[str, Any]],
    *,
    params: tuple[dict[str, Any], ...] = (),
    body: str | None = None,
    errors: tuple[str, ...] = ("400", "503"),
    write: bool = False,
) -> dict[str, Any]:
    code, schema = ok
    found: dict[str, Any] = {
        "summary": summary,
        "parameters": list(params),
        "responses": {code: {"description": "done", "content": {JSON: {"schema": schema}}}},
    }
    if body is not None:
        found["requestBody"] = {"required": True, "content": {JSON: {"schema": _ref(body)}}}
    if write:
        found["security"] = [{"bearer": []}]
        errors = (*errors, "401", "403")
    for each in sorted(errors):
        found["responses"][each] = _error(each)
    return found


def _writes(summary: str, ok: tuple[str, dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return _operation(summary, ok, write=True, **kw)


PATHS: dict[str, dict[str, Any]] = {
    "/openapi.json": {
        "get": _operation("This document", ("200", {"type": "object"}), errors=()),
    },
    "/status": {
        "get": _operation(
            "Replica, accounts, outbox, jobs, recent events", ("200", _ref("Status"))
        ),
    },
    "/accounts": {
        "get": _operation("Each account, its leader and last poll", ("200", _list("Account")))
    },
    "/templates": {
        "get": _operation(
            "Each watched template: recent runs, failure streak, last alert of the day",
            ("200", _list("Template")),
        )
    },
    "/series": {
        "get": _operation(
            "The series updated last, newest first: state, latest value, baseline, recent values",
            ("200", _list("Series")),
            params=(LIMIT,),
        )
    },
    "/events": {
        "get": _operation("Recent events, newest first", ("200", _list("Event")), params=(LIMIT,))
    },
    "/alerts": {
        "get": _operation(
            "Alerts queued since a time, newest first, each with its steps",
            ("200", _list("Alert")),
            params=(
                _param(
                    "since",
                    "query",
                    {"type": "string"},
                    "a duration (90m, 2d) or an ISO time; default 1d",
                ),
                _param("channel", "query", {"type": "string"}, "a channel's name"),
                _param("state", "query", SCHEMAS["Alert"]["properties"]["state"], "a state"),
                LIMIT,
            ),
        )
    },
    "/alerts/{id}/retry": {
        "post": _writes(
            "Requeue a given-up alert",
            ("200", _ref("Requeued")),
            params=(ID,),
            errors=("404", "409", "503"),
        )
    },
    "/silences": {
        "get": _operation("Silences active or to come", ("200", _list("Silence")), params=(ALL,)),
        "post": _writes(
            "Add a silence",
            ("201", _ref("Silence")),
            body="NewSilence",
            errors=("400", "413", "415", "422", "503"),
        ),
    },
    "/silences/{id}": {
        "delete": _writes(
            "Expire a silence now", ("200", _ref("Silence")), params=(ID,), errors=("404", "503")
        )
    },
    "/acks": {
        "get": _operation("Acknowledgements in force", ("200", _list("Ack")), params=(ALL,)),
        "post": _writes(
            "Acknowledge a job or a template: its reminders stop until it moves on",
            ("201", _ref("Ack")),
            body="NewAck",
            errors=("400", "413", "415", "422", "503"),
        ),
    },
    "/acks/{id}": {
        "delete": _writes(
            "Withdraw an acknowledgement", ("200", _ref("Ack")), params=(ID,), errors=("404", "503")
        )
    },
}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "watcher",
            "version": __version__,
            "description": "Reads are open to whoever reaches server.listen; writes need"
            ' Authorization: Bearer <server.api_token>. Every error is {"error": ...}'
            " naming the problem; every answer has Cache-Control: no-store.",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "server.api_token (or the contents of api_token_file)",
                }
            },
        },
    }
