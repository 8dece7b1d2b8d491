"""A JSON body that no reader takes whole, read around the records that sink it.

One record with invalid UTF-8, nesting past the recursion limit or a number past
Python's digit limit makes both JSON readers refuse the whole body. Here the body's
structure is found from its bytes alone, each record under `results` is read on its
own (an `Unreadable` stands in for one that no reader takes) and the rest as usual. Knows
nothing of jobs; raises `BrokenBody` only when the structure around the records is
broken, naming the byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("watcher.salvage")


class BrokenBody(ValueError):
    """The body cannot be read around its records (cut short, brackets that do not
    match, not JSON outside the records)."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """In place of a record that no JSON reader takes: skipped like a malformed record."""

    problem: str  # what is wrong, at which byte of the body
    sref: str  # as far as the record's bytes tell, else "?"


# A JSON string (escapes and all), a bracket or a comma: the body's structure. A quote
# left alone is a string that never ends. Possessive quantifiers: a hostile string
# cannot make the scan backtrack.
_TOKEN = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[\[\]{},]|"', re.DOTALL)
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}
_QUOTE, _COMMA, _BRACE, _RESULTS = ord('"'), ord(","), ord("{"), b'"results"'
_SREF_BYTES = re.compile(rb'"sref"\s*:\s*"([!#-\[\]-~]{1,100})"')  # printable ASCII only
_BLANK = b" \t\r\n"


@dataclass(slots=True)
class _Records:
    """Where the records of the last `results` value lie in a body: [start, end) spans."""

    keys: int = 0  # `results` keys of the top object; Python's reader keeps the last one
    key: int = 0  # the one whose value the spans are in
    spans: list[tuple[int, int]] = field(default_factory=list)
    single: bool = False  # that value is one object, not a list


def read(body: bytes, read_record: Callable[[bytes, int], Any]) -> Any:
    """Python's reader on the whole body; failing that, the body read around its
    records and each record on its own (`read_record(its bytes, its offset)`)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # one record is enough to sink the whole body
        pass
    try:
        records = _scan(body)
        return _with_records(_outline(body, records), body, records, read_record)
    except BrokenBody as exc:
        log.warning("api_body_unreadable", problem=str(exc))
        raise


def _scan(body: bytes) -> _Records:
    """Where the records are, from the body's strings and brackets alone: no recursion
    (nesting costs no stack) and no decoding (bytes that are not UTF-8 cost nothing).
    BrokenBody at a fault that leaves the records nowhere: a string that never ends,
    a bracket that closes another kind, brackets left open."""
    found, closers = _Records(), bytearray()
    expect_key, key, inside, start = False, b"", False, 0
    for token in _TOKEN.finditer(body):
        at, kind, depth = token.start(), body[token.start()], len(closers)
        if kind == _QUOTE:
            if token.end() - at == 1:
                raise BrokenBody(f"a string from byte {at} never ends")
            if depth == 1 and expect_key:
                key, expect_key = token[0], False
                if key == _RESULTS:
                    found.keys += 1
        elif kind == _COMMA:
            expect_key = depth == 1 and closers[0] == _CLOSER[_BRACE]
            if inside and depth == 2 and not found.single:
                found.spans.append((start, at))
                start = token.end()
        elif kind in _CLOSER:
            if depth == 1 and key == _RESULTS:
                inside, found.key, found.spans = True, found.keys, []
                found.single = kind == _BRACE
                start = at if found.single else token.end()
            expect_key = depth == 0 and kind == _BRACE
            closers.append(_CLOSER[kind])
        else:
            if not closers or closers[-1] != kind:
                raise BrokenBody(f"the bracket at byte {at} closes none that is open")
            closers.pop()
            if inside and depth == 2:
                found.spans.append((start, token.end() if found.single else at))
                inside = False
    if closers:
        raise BrokenBody(f"the body ends at byte {len(body)} with {len(closers)} brackets open")
    found.spans = [span for start, end in found.spans if (span := _trimmed(body, start, end))]
    return found


def _trimmed(body: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The span without the blanks around it; None if that leaves nothing (`[]`)."""
    text = body[start:end]
    kept = text.strip(_BLANK)
    if not kept:
        return None
    start += len(text) - len(text.lstrip(_BLANK))
    return start, start + len(kept)


def _outline(body: bytes, records: _Records) -> Any:
    """What Python's reader makes of the body with each record replaced by a `0` padded
    to the record's length: the envelope, with its faults at the body's own bytes."""
    outline = bytearray(body)
    for start, end in records.spans:
        outline[start:end] = b"0".ljust(end - start)
    try:
        return json.loads(outline)
    except (ValueError, RecursionError) as exc:
        raise BrokenBody(f"around the records: {_problem(exc, 0)}") from None


def _with_records(
    envelope: Any, body: bytes, records: _Records, read_record: Callable[[bytes, int], Any]
) -> Any:
    """The envelope with its records read, if its `results` is the value they were in."""
    if not isinstance(envelope, dict) or records.keys == 0 or records.key != records.keys:
        return envelope
    values = [read_record(body[start:end], start) for start, end in records.spans]
    envelope["results"] = values[0] if records.single else values
    return envelope


def plain_record(record: bytes, at: int) -> Any:
    """A record as Python's reader makes it, else an `Unreadable` saying why."""
    try:
        return json.loads(record)
    except (ValueError, RecursionError) as exc:
        found = _SREF_BYTES.search(record)
        return Unreadable(_problem(exc, at), found[1].decode() if found else "?")


def _problem(exc: Exception, at: int) -> str:
    """What a JSON reader's error says, at the byte of the body (bytes from `at` read)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {at + exc.start}"
    if isinstance(exc, json.JSONDecodeError):
        before = exc.doc[: exc.pos].encode("utf-8", "surrogatepass")
        return f"not JSON at byte {at + len(before)}: {exc.msg}"
    if isinstance(exc, RecursionError):
        return f"nested deeper than the JSON readers go, from byte {at}"
    return f"unreadable from byte {at}: {str(exc).split(':')[0]}"  # 4300 digits and more
