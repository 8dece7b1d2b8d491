"""The settings of `regressed` and `improved` rules: metrics, thresholds, baseline."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from watcher.settings import Match, PollSettings, Rule


def perf(**match: Any) -> Match:
    return Match.model_validate({"event": "regressed", **match})


def test_the_defaults_are_spec_s() -> None:
    m = perf()
    assert m.metrics == ("onLoad",)
    t = m.thresholds("onLoad")
    assert (t.mad_k, t.allowance, t.relative, t.absolute, t.runs, t.min_runs, t.consecutive) == (
        4.0,
        2.0,
        0.10,
        0.1,
        60,
        6,
        2,
    )
    assert perf(threshold={"allowance": 1.5}).thresholds("onLoad").allowance == 1.5
    assert perf(metric="pageSize").thresholds("pageSize").use_mad is False
    assert perf(metric="pageSize").thresholds("pageSize").absolute == 0.0


@pytest.mark.parametrize(
    ("given", "relative", "absolute"),
    [
        ({"relative": "25%", "absolute": "250ms"}, 0.25, 0.25),
        ({"relative": 0.05, "absolute": 0.2}, 0.05, 0.2),
        ({"relative": "0%", "absolute": "1.5s"}, 0.0, 1.5),
        ({"relative": " 12.5 % ", "absolute": "0"}, 0.125, 0.0),
    ],
)
def test_percentages_and_durations_are_read_plainly(
    given: dict[str, Any], relative: float, absolute: float
) -> None:
    t = perf(threshold=given, consecutive=3, baseline={"runs": 10, "min_runs": 4})
    got = t.thresholds("onLoad")
    assert (got.relative, got.absolute, got.consecutive, got.runs, got.min_runs) == (
        relative,
        absolute,
        3,
        10,
        4,
    )


@pytest.mark.parametrize(
    ("match", "says"),
    [
        ({"threshold": {"relative": 10}}, "relative"),
        ({"threshold": {"relative": "ten%"}}, "relative"),
        ({"threshold": {"relative": "-5%"}}, "relative"),
        ({"threshold": {"absolute": "fast"}}, "absolute"),
        ({"threshold": {"absolute": -1}}, "absolute"),
        ({"threshold": {"mad": -1}}, "mad"),
        ({"threshold": {"madd": 3}}, "madd"),
        ({"metric": ["onload"]}, "metric: 'onload' is not a numeric test-run field"),
        ({"metric": ["pageSize"], "threshold": {"absolute": "100ms"}}, "threshold.absolute"),
        ({"baseline": {"runs": 5, "min_runs": 6}}, "min_runs"),
        ({"baseline": {"runs": 0}}, "runs"),
        ({"consecutive": 0}, "consecutive"),
        ({"repeat": "every"}, "repeat: only for event transition"),
    ],
)
def test_mistakes_are_refused_naming_the_key(match: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        perf(**match)


@pytest.mark.parametrize("event", ["transition", "stuck", "recovered"])
@pytest.mark.parametrize("key", ["metric", "threshold", "baseline"])
def test_the_regression_keys_are_only_for_regressed_and_improved(event: str, key: str) -> None:
    value: Any = {"metric": ["onLoad"], "threshold": {"mad": 3}, "baseline": {"runs": 9}}[key]
    extra = {"after": "2h"} if event == "stuck" else {}
    with pytest.raises(ValidationError, match=f"{key}: only for event regressed or improved"):
        Match.model_validate({"event": event, key: value, **extra})


def test_an_improved_rule_takes_the_same_keys() -> None:
    m = Match.model_validate({"event": "improved", "metric": ["speedIndex"], "consecutive": 3})
    assert m.thresholds("speedIndex").consecutive == 3


def test_lookups_a_cycle_are_bounded() -> None:
    assert PollSettings().test_run_lookups == 50
    with pytest.raises(ValidationError):
        PollSettings(test_run_lookups=0)


def rule(event: str, **extra: Any) -> Rule:
    needs: dict[str, Any] = {
        "stuck": {"after": "2h"},
        "missed": {"every": "1d", "template": ["jobTemplates/1"]},
    }
    match = {"event": event, **needs.get(event, {})}
    return Rule.model_validate({"name": "r", "match": match, "notify": ["ops"], **extra})


def test_regressed_and_improved_alerts_carry_a_chart_unless_the_rule_says_not() -> None:
    assert rule("regressed").charted
    assert rule("improved", chart=True).charted
    assert not rule("regressed", chart=False).charted
    assert not rule("transition").charted


@pytest.mark.parametrize("event", ["transition", "stuck", "missed"])
@pytest.mark.parametrize("chart", [True, False])
def test_chart_is_only_for_regressed_and_improved(event: str, chart: bool) -> None:
    says = f"chart: only for event regressed or improved, not {event}"
    with pytest.raises(ValidationError, match=says):
        rule(event, chart=chart)


def test_chart_must_be_a_boolean() -> None:
    with pytest.raises(ValidationError, match="chart"):
        rule("regressed", chart="sometimes")
