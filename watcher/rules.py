"""Pure: an event + the configured rules -> which rules fire, and why the others do not.

Rules are tried in order; a matching rule with `stop: true` ends the search. Every
rule gets a decision with a reason, so `check --explain` and the logs can say why.
`match.account` is not tried here: each account's events meet `rules_for` that account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase

from watcher.models import FAILURE_STATUSES, PERF_KINDS, Event, EventKind, Job, MatchReason
from watcher.settings import Match, Rule


@dataclass(frozen=True, slots=True)
class Decision:
    rule: Rule
    reason: MatchReason

    @property
    def fires(self) -> bool:
        return self.reason is MatchReason.MATCHED


def _glob(patterns: Sequence[str], value: str) -> bool:
    return not patterns or any(fnmatchcase(value, p) for p in patterns)


def _one_of(allowed: Sequence[str], value: str) -> bool:
    # API enums (type, runType) are matched without regard to case: "crawl" means "Crawl".
    return not allowed or value.casefold() in {a.casefold() for a in allowed}


def _streak(m: Match, event: Event) -> bool:
    """`consecutive: N`: the Nth failure in a row only, or with `repeat: every` the Nth
    and each one after it while the streak lasts."""
    if m.consecutive is None or event.kind is not EventKind.TRANSITION:
        return True  # on regressed and improved, consecutive is the statistics' knob
    if event.to_status not in FAILURE_STATUSES:
        return False
    return event.streak == m.consecutive or (m.repeat == "every" and event.streak > m.consecutive)


def match(m: Match, event: Event, rule_name: str = "") -> MatchReason:
    """The first reason the rule does not apply to the event, or MATCHED (cheapest first)."""
    if m.event != event.kind:
        return MatchReason.WRONG_EVENT
    if event.rule is not None and event.rule != rule_name:
        return MatchReason.OTHER_RULE
    if m.to and event.to_status not in m.to:
        return MatchReason.WRONG_TO
    if m.from_ and event.from_status not in m.from_:
        return MatchReason.WRONG_FROM
    job = event.job
    if not _glob(m.name, job.name):
        return MatchReason.WRONG_NAME
    if not _one_of(m.type, job.type):
        return MatchReason.WRONG_TYPE
    if not _one_of(m.run_type, job.run_type):
        return MatchReason.WRONG_RUN_TYPE
    if not _glob(m.template, job.template):
        return MatchReason.WRONG_TEMPLATE
    if not _glob(m.started_by, job.started_by):
        return MatchReason.WRONG_STARTED_BY
    if not _streak(m, event):
        return MatchReason.WRONG_STREAK
    if event.kind in PERF_KINDS and _metric(event) not in m.metrics:
        return MatchReason.WRONG_METRIC
    return MatchReason.MATCHED


def _metric(event: Event) -> object:
    return event.perf.get("metric") if event.perf else None


def perf_rules(rules: Sequence[Rule], job: Job) -> list[Rule]:
    """The regressed and improved rules that would take an event of this job's series
    (any metric): whose test runs are read, and for which metrics."""
    out = []
    for rule in rules:
        if rule.match.event in PERF_KINDS:
            probe = Event(rule.match.event, job, "", "", _EPOCH, perf={"metric": None})
            if match(rule.match, probe, rule.name) in (_MATCHED, MatchReason.WRONG_METRIC):
                out.append(rule)
    return out


class Router:
    """The rules that fire for each event, as `evaluate` decides, without the reasons:
    the cycle's hot path (a window of new jobs is 100k events, most wanted by no rule).

    Only the rules that can apply to an event's kind and new status are tried; the
    others could not match, so could not stop the search either.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = rules
        # (rule, whether its kind and new status are all it asks of an event)
        self._candidates: dict[tuple[EventKind, str], list[tuple[Rule, bool]]] = {}

    def _candidates_for(self, kind: EventKind, to: str) -> list[tuple[Rule, bool]]:
        candidates = self._candidates.get((kind, to))
        if candidates is None:
            candidates = self._candidates[kind, to] = [
                (r, _kind_and_status_only(r.match))
                for r in self._rules
                if r.match.event == kind and (not r.match.to or to in r.match.to)
            ]
        return candidates

    def wants(self, kind: EventKind, to: str) -> bool:
        """Whether any rule could act on an event of this kind and new status."""
        return bool(self._candidates_for(kind, to))

    def __call__(self, event: Event) -> tuple[Rule, ...]:
        out: list[Rule] = []
        for rule, plain in self._candidates_for(event.kind, event.to_status):
            if (plain and event.rule is None) or match(rule.match, event, rule.name) is _MATCHED:
                out.append(rule)
                if rule.stop:
                    break
        return tuple(out)  # () for most events: one shared object, not 100k empty lists


def _kind_and_status_only(m: Match) -> bool:
    """Whether `match` asks no more of an event than its kind and new status (which pick
    a rule's candidates): then a candidate matches any event but another rule's timer."""
    return (
        m.event not in PERF_KINDS
        and m.consecutive is None
        and not (m.from_ or m.name or m.type or m.run_type or m.template or m.started_by)
    )


_MATCHED = MatchReason.MATCHED
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rules_for(rules: Sequence[Rule], account: str) -> list[Rule]:
    """The rules that may fire for one account's events, in their order: those whose
    `match.account` is empty, and those that name the account. A rule for other accounts
    is left out, so its `stop` does not end the search for this one."""
    return [r for r in rules if not r.match.account or account in r.match.account]


def evaluate(event: Event, rules: Sequence[Rule]) -> list[Decision]:
    decisions: list[Decision] = []
    stopped = False
    for rule in rules:
        reason = MatchReason.STOPPED if stopped else match(rule.match, event, rule.name)
        decisions.append(Decision(rule, reason))
        stopped = stopped or (reason is MatchReason.MATCHED and rule.stop)
    return decisions
