"""Rules: an event + the configured rules -> a decision with a reason for every rule."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.models import NEW, Event, EventKind, Job, MatchReason
from watcher.rules import Router, evaluate, match, rules_for
from watcher.settings import Rule

AT = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
JOB = Job(
    sref="jobs/12345",
    name="Nightly homepage",
    status="failed",
    type="Crawl",
    run_type="scheduled",
    started_by="Joe Bloggs",
    template="jobTemplates/6789",
)


def event(
    to: str = "failed", from_: str = "running", kind: EventKind = EventKind.TRANSITION, **job: Any
) -> Event:
    fields = {
        "sref": JOB.sref,
        "name": JOB.name,
        "status": to,
        "type": JOB.type,
        "run_type": JOB.run_type,
        "started_by": JOB.started_by,
        "template": JOB.template,
        **job,
    }
    return Event(kind=kind, job=Job(**fields), from_status=from_, to_status=to, at=AT)


def rule(rule_name: str = "r", stop: bool = False, **match: Any) -> Rule:
    return Rule.model_validate({"name": rule_name, "match": match, "notify": ["ops"], "stop": stop})


# (case, match config, event, expected reason)
MATCHERS = [
    ("empty match takes every transition", {}, event(), MatchReason.MATCHED),
    ("to as a single value", {"to": "failed"}, event(), MatchReason.MATCHED),
    ("to in a list", {"to": ["expired", "failed"]}, event(), MatchReason.MATCHED),
    ("to differs", {"to": ["completed"]}, event(), MatchReason.WRONG_TO),
    ("from as a single value", {"from": "running"}, event(), MatchReason.MATCHED),
    ("from in a list", {"from": ["pending", "running"]}, event(), MatchReason.MATCHED),
    ("from differs", {"from": ["pending"]}, event(), MatchReason.WRONG_FROM),
    ("from new is a first sighting", {"from": "new"}, event(from_=NEW), MatchReason.MATCHED),
    ("from new is not a change", {"from": "new"}, event(), MatchReason.WRONG_FROM),
    ("name glob", {"name": "Nightly *"}, event(), MatchReason.MATCHED),
    ("name exact", {"name": "Nightly homepage"}, event(), MatchReason.MATCHED),
    ("name any glob of a list", {"name": ["Weekly *", "*homepage"]}, event(), MatchReason.MATCHED),
    ("name glob differs", {"name": "Weekly *"}, event(), MatchReason.WRONG_NAME),
    ("name glob is case-sensitive", {"name": "nightly *"}, event(), MatchReason.WRONG_NAME),
    ("type ignores case", {"type": "crawl"}, event(), MatchReason.MATCHED),
    ("type in a list", {"type": ["Single", "CRAWL"]}, event(), MatchReason.MATCHED),
    ("type differs", {"type": ["Scripted"]}, event(), MatchReason.WRONG_TYPE),
    ("run_type ignores case", {"run_type": "Scheduled"}, event(), MatchReason.MATCHED),
    ("run_type differs", {"run_type": ["manual"]}, event(), MatchReason.WRONG_RUN_TYPE),
    (
        "run_type keeps unknown values",
        {"run_type": "triggered"},
        event(run_type="Triggered"),
        MatchReason.MATCHED,
    ),
    ("template exact", {"template": "jobTemplates/6789"}, event(), MatchReason.MATCHED),
    ("template glob", {"template": ["jobTemplates/67*"]}, event(), MatchReason.MATCHED),
    ("template differs", {"template": ["jobTemplates/1"]}, event(), MatchReason.WRONG_TEMPLATE),
    ("started_by glob", {"started_by": ["Joe *"]}, event(), MatchReason.MATCHED),
    ("started_by differs", {"started_by": "Ann *"}, event(), MatchReason.WRONG_STARTED_BY),
    (
        "unknown statuses match only an empty to",
        {},
        event(to="Exploded"),
        MatchReason.MATCHED,
    ),
    ("another kind of event", {}, event(kind=EventKind.STUCK), MatchReason.WRONG_EVENT),
    (
        "every matcher at once",
        {
            "to": "failed",
            "from": ["running"],
            "name": "Nightly*",
            "type": "crawl",
            "run_type": "scheduled",
            "template": "jobTemplates/*",
            "started_by": "Joe*",
        },
        event(),
        MatchReason.MATCHED,
    ),
    (
        "the first matcher that differs is the reason",
        {"to": "completed", "name": "Weekly *"},
        event(),
        MatchReason.WRONG_TO,
    ),
]


@pytest.mark.parametrize(
    ("config", "ev", "reason"), [pytest.param(*case[1:], id=case[0]) for case in MATCHERS]
)
def test_match_table(config: dict[str, Any], ev: Event, reason: MatchReason) -> None:
    """Each row: the reason one rule's match gives for one event."""
    assert match(rule(**config).match, ev) is reason


@pytest.mark.parametrize("key", ["to", "from", "name", "type", "run_type", "template"])
def test_single_value_is_read_as_a_one_item_list(key: str) -> None:
    """`key: x` in the configuration means the same as `key: [x]`."""
    value = {"to": "failed", "from": "new"}.get(key, "x")
    assert rule(**{key: value}).match == rule(**{key: [value]}).match


def test_every_rule_gets_a_decision_in_order() -> None:
    """evaluate answers for each rule, in the configured order."""
    rules = [rule("a", to="completed"), rule("b", to="failed"), rule("c")]
    decisions = evaluate(event(), rules)
    assert [(d.rule.name, d.reason) for d in decisions] == [
        ("a", MatchReason.WRONG_TO),
        ("b", MatchReason.MATCHED),
        ("c", MatchReason.MATCHED),
    ]


def test_decision_fires_only_when_matched() -> None:
    """`fires` is true for a match and false for any other reason."""
    fired, missed = evaluate(event(), [rule("a"), rule("b", to="completed")])
    assert (fired.fires, missed.fires) == (True, False)


def test_stop_gives_later_rules_the_stopped_reason() -> None:
    """After a matching rule with stop, every later rule is STOPPED, matching or not."""
    rules = [rule("a", stop=True), rule("b"), rule("c", to="completed")]
    reasons = [d.reason for d in evaluate(event(), rules)]
    assert reasons == [MatchReason.MATCHED, MatchReason.STOPPED, MatchReason.STOPPED]


def test_stop_on_a_rule_that_does_not_match_stops_nothing() -> None:
    """stop only takes effect when its rule matched."""
    rules = [rule("a", stop=True, to="completed"), rule("b")]
    reasons = [d.reason for d in evaluate(event(), rules)]
    assert reasons == [MatchReason.WRONG_TO, MatchReason.MATCHED]


def test_rules_before_the_stop_are_unaffected() -> None:
    """Rules tried before the stopping rule keep their own decisions."""
    rules = [rule("a"), rule("b", stop=True), rule("c")]
    reasons = [d.reason for d in evaluate(event(), rules)]
    assert reasons == [MatchReason.MATCHED, MatchReason.MATCHED, MatchReason.STOPPED]


def test_no_rules_no_decisions() -> None:
    """An empty rule list decides nothing."""
    assert evaluate(event(), []) == []


# -- rules per account ---------------------------------------------------------------------


def test_rules_for_keeps_rules_without_an_account_and_those_naming_it() -> None:
    """A rule without match.account is every account's; one with it, only theirs; the
    configuration's order is kept."""
    rules = [
        rule("all"),
        rule("uk", account="shop-uk"),
        rule("de", account=["shop-de"]),
        rule("both", account=["shop-de", "shop-uk"]),
        rule("all-again"),
    ]
    names = {a: [r.name for r in rules_for(rules, a)] for a in ("shop-uk", "shop-de", "shop-fr")}
    assert names == {
        "shop-uk": ["all", "uk", "both", "all-again"],
        "shop-de": ["all", "de", "both", "all-again"],
        "shop-fr": ["all", "all-again"],
    }


def test_rules_for_returns_the_rules_themselves() -> None:
    """The same Rule objects, so that routing and the outbox see the configured rules."""
    rules = [rule("a"), rule("b", account="default")]
    assert all(x is y for x, y in zip(rules_for(rules, "default"), rules, strict=True))
    assert rules_for([], "default") == []


def test_another_account_s_stop_does_not_end_the_search() -> None:
    """A stopping rule of another account is not among this account's rules, so the rules
    after it are still tried."""
    rules = [rule("uk-only", stop=True, account="shop-uk"), rule("everyone")]
    fired = [d.rule.name for d in evaluate(event(), rules_for(rules, "shop-de")) if d.fires]
    assert fired == ["everyone"]
    fired = [d.rule.name for d in evaluate(event(), rules_for(rules, "shop-uk")) if d.fires]
    assert fired == ["uk-only"]


_KINDS = st.sampled_from([EventKind.TRANSITION, EventKind.RECOVERED])
_STATUSES = st.sampled_from(["pending", "running", "failed", "completed", "expired", "new"])
_MATCHES = st.fixed_dictionaries(
    {},
    optional={
        "to": st.lists(_STATUSES.filter(lambda s: s != "new"), min_size=1, max_size=2),
        "from": st.lists(_STATUSES, min_size=1, max_size=2),
        "name": st.sampled_from(["Nightly *", "Weekly *"]),
        "type": st.sampled_from(["crawl", "Single"]),
        "run_type": st.sampled_from(["manual", "scheduled"]),
        "template": st.sampled_from(["jobTemplates/*", "other/*"]),
        "started_by": st.sampled_from(["Joe*", "Ann*"]),
        "consecutive": st.integers(1, 3),
    },
)


@given(
    kind=_KINDS,
    to=_STATUSES.filter(lambda s: s != "new"),
    from_=_STATUSES,
    configs=st.lists(st.tuples(_MATCHES, st.booleans()), max_size=4),
    streak=st.integers(0, 4),
    owner=st.sampled_from([None, "r0", "r1"]),
)
def test_the_fast_path_fires_exactly_the_rules_evaluate_fires(
    kind: EventKind,
    to: str,
    from_: str,
    configs: list[tuple[dict[str, Any], bool]],
    streak: int,
    owner: str | None,
) -> None:
    """`Router` (the cycle's hot path) agrees with `evaluate` (the explained one), for
    rules that ask anything of an event and events of any streak, owned by a rule or not."""
    rules = [rule(f"r{n}", stop, **m) for n, (m, stop) in enumerate(configs)]
    e = dataclasses.replace(event(to=to, from_=from_, kind=kind), streak=streak, rule=owner)
    route = Router(rules)
    assert route(e) == route(e) == tuple(d.rule for d in evaluate(e, rules) if d.fires)
