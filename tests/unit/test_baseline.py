"""The regression statistics of one series (`watcher/baseline.py`), by tables.

Noise is log-normal around a level, from `random.Random(seed)`: deterministic.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence

import pytest

from watcher.baseline import (
    SeriesState,
    Thresholds,
    Verdict,
    acknowledge,
    band,
    clean_number,
    clean_run,
    observe,
)

DEFAULT = Thresholds()  # a timing in seconds: mad 4, relative 10%, absolute 0.1 s


def noisy(level: float, cv: float, count: int, seed: int) -> list[float]:
    """`count` log-normal values whose median is `level`, coefficient of variation `cv`."""
    rng = random.Random(seed)
    sigma = math.sqrt(math.log1p(cv * cv))
    return [level * math.exp(rng.gauss(0.0, sigma)) for _ in range(count)]


def feed(
    values: Iterable[object],
    thresholds: Thresholds = DEFAULT,
    state: SeriesState | None = None,
) -> tuple[SeriesState, list[Verdict]]:
    state = state or SeriesState()
    verdicts = []
    for value in values:
        state, verdict = observe(state, value, thresholds)
        verdicts.append(verdict)
    return state, verdicts


def fired(verdicts: Sequence[Verdict]) -> list[tuple[int, str]]:
    return [(i, v.fired) for i, v in enumerate(verdicts) if v.fired]


# --- no verdict before min_runs ----------------------------------------------------


@pytest.mark.parametrize(
    ("min_runs", "consecutive"),
    [(6, 2), (3, 1), (10, 2), (1, 1)],
)
def test_no_verdict_before_min_runs(min_runs: int, consecutive: int) -> None:
    thresholds = Thresholds(min_runs=min_runs, consecutive=consecutive)
    # wildly rising values: every one would be flagged if there were a baseline
    values = [1.0 * 3**i for i in range(min_runs)]
    state, verdicts = feed(values, thresholds)
    assert all(v.median is None and not v.flagged and v.fired is None for v in verdicts)
    assert state.baseline == tuple(values)
    # the first judged value (a baseline of a few wildly spread values has a wide band:
    # its scale counts 20 / values times, so the value is far up)
    _, verdict = observe(state, 1e300, thresholds)
    assert verdict.median is not None
    assert verdict.flagged


# --- a single outlier does not fire with consecutive 2 -----------------------------


@pytest.mark.parametrize(
    ("cv", "spike"),
    [(0.0, 10.0), (0.02, 3.0), (0.05, 2.0), (0.10, 5.0), (0.20, 20.0)],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_single_outlier_does_not_fire(cv: float, spike: float, seed: int) -> None:
    values = noisy(2.0, cv, 20, seed)
    state, _ = feed(values)
    state, outlier = observe(state, 2.0 * spike, DEFAULT)
    assert outlier.flagged
    assert outlier.fired is None
    assert not state.regressed
    state, verdicts = feed(noisy(2.0, cv, 10, seed + 100), state=state)
    assert fired(verdicts) == []
    assert 2.0 * spike in state.baseline  # the lone outlier joined the baseline afterwards


def test_outliers_apart_never_fire() -> None:
    values: list[float] = []
    for chunk in range(10):
        values += [*noisy(2.0, 0.05, 5, chunk), 9.0]  # one spike every sixth run
    _, verdicts = feed(values)
    assert fired(verdicts) == []
    assert sum(v.flagged for v in verdicts) >= 8


# --- a step change of +30% with 5% noise fires within `consecutive` runs -----------


def bounded(level: float, amplitude: float, count: int, seed: int) -> list[float]:
    """`count` values spread evenly within +-`amplitude` (a fraction) of `level`."""
    rng = random.Random(seed)
    return [level * (1 + rng.uniform(-amplitude, amplitude)) for _ in range(count)]


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("consecutive", [1, 2, 3])
def test_a_30_percent_step_with_5_percent_noise_fires_within_consecutive(
    seed: int, consecutive: int
) -> None:
    """Noise within +-5% of the level: every such step fires on its `consecutive`th run."""
    thresholds = Thresholds(consecutive=consecutive)
    state, before = feed(bounded(2.0, 0.05, 25, seed), thresholds)
    assert fired(before) == []
    state, after = feed(bounded(2.6, 0.05, consecutive, seed + 1000), thresholds, state)
    assert fired(after) == [(consecutive - 1, "regressed")]
    verdict = after[-1]
    assert verdict.regressed
    assert verdict.median is not None
    assert verdict.percent is not None
    assert 15 < verdict.percent < 50
    assert verdict.value is not None
    assert verdict.delta == pytest.approx(verdict.value - verdict.median)
    # once per regression: more slow runs fire nothing
    state, more = feed(bounded(2.6, 0.05, 10, seed + 2000), thresholds, state)
    assert fired(more) == []
    assert state.regressed


def test_a_30_percent_step_with_log_normal_5_percent_noise_mostly_fires_at_once() -> None:
    """Log-normal noise with a 5% coefficient of variation is unbounded: the default band
    (4 x 1.4826 x MAD, about 4 standard deviations, +20%) is close to the step, and a
    window of 20 estimates the MAD loosely. Measured over 200 seeds: 85% fire on the 2nd
    run at the new level; the rest later or (values straddling the band join the
    baseline) never. The benchmark (`benchmarks/false_alarms.py`) reports the same."""
    at_once = 0
    for seed in range(200):
        state, before = feed(noisy(2.0, 0.05, 25, seed))
        state, after = feed(noisy(2.6, 0.05, 2, seed + 1000), state=state)
        assert fired(before) == []
        at_once += fired(after) == [(1, "regressed")]
    assert at_once >= 150


# --- constant metrics (MAD 0) fire only past the relative or absolute floor --------


@pytest.mark.parametrize(
    ("thresholds", "level", "in_band", "flagged"),
    [
        # timing 2 s: relative 10% (0.2 s) beats absolute 0.1 s
        (DEFAULT, 2.0, 2.2, 2.2001),
        # timing 0.5 s: absolute 0.1 s beats relative (0.05 s)
        (DEFAULT, 0.5, 0.6, 0.6001),
        # zero: only the absolute floor
        (DEFAULT, 0.0, 0.1, 0.1001),
        # page size in bytes: relative only (absolute 0)
        (Thresholds.for_metric("pageSize"), 1_000_000, 1_100_000, 1_100_001),
        # object count: relative 10% of 40 = 4 objects
        (Thresholds.for_metric("objectCount"), 40, 44, 45),
        # a configured absolute for a count: 10 objects beat 10% of 40
        (Thresholds.for_metric("objectCount", absolute=10), 40, 50, 51),
        # relative 0 and absolute 0: any rise is flagged
        (Thresholds(relative=0, absolute=0), 3.0, 3.0, 3.000001),
    ],
)
def test_constant_metrics_fire_only_past_the_floor(
    thresholds: Thresholds, level: float, in_band: float, flagged: float
) -> None:
    state, _ = feed([level] * 10, thresholds)
    judged = band(state.baseline, thresholds)
    assert judged is not None
    assert judged.mad == 0
    assert judged.limit == pytest.approx(in_band)
    state_in, verdicts = feed([in_band] * 5, thresholds, state)
    assert not any(v.flagged for v in verdicts)
    assert not state_in.regressed
    _, verdicts = feed([flagged] * 2, thresholds, state)
    assert [v.flagged for v in verdicts] == [True, True]
    assert fired(verdicts) == [(1, "regressed")]


def test_size_metrics_ignore_the_mad() -> None:
    sizes = Thresholds.for_metric("pageSize")
    timing = Thresholds.for_metric("onLoad")
    assert not sizes.use_mad
    assert timing.use_mad
    assert timing.absolute == 0.1
    assert sizes.absolute == 0
    assert Thresholds.for_metric("objectCount").absolute == 0
    wide = [100.0, 150.0, 80.0, 120.0, 60.0, 140.0, 90.0, 110.0]  # a wide MAD
    size_band = band(tuple(wide), sizes)
    time_band = band(tuple(wide), timing)
    assert size_band is not None
    assert time_band is not None
    assert size_band.bound == "relative"
    assert size_band.limit == pytest.approx(105 * 1.1)
    assert time_band.bound == "mad"
    assert time_band.limit > size_band.limit


# --- a new level becomes the baseline, acknowledged or after baseline.runs runs ----


def regressed_series(seed: int, thresholds: Thresholds = DEFAULT) -> SeriesState:
    state, before = feed(noisy(2.0, 0.05, 25, seed), thresholds)
    state, after = feed(noisy(3.0, 0.05, thresholds.consecutive, seed + 1), thresholds, state)
    assert fired(before + after) == [(24 + thresholds.consecutive, "regressed")]
    return state


@pytest.mark.parametrize("seed", range(5))
def test_a_new_level_becomes_the_baseline_after_baseline_runs(seed: int) -> None:
    state = regressed_series(seed)
    frozen = state.baseline
    new_level = noisy(3.0, 0.05, DEFAULT.runs + 20, seed + 7)
    began = len(state.since)  # the regression's values so far (its excursion)
    state, verdicts = feed(new_level, state=state)
    # the regression is kept, against its frozen baseline, until it holds `runs` values
    last = DEFAULT.runs - began - 1  # the value that makes `runs` of them
    assert [v.regressed for v in verdicts[:last]] == [True] * last
    assert all(v.median == pytest.approx(statistics.median(frozen)) for v in verdicts[: last + 1])
    adopted = [i for i, v in enumerate(verdicts) if v.adopted]
    assert adopted == [last]
    assert fired(verdicts) == []  # adoption fires nothing
    assert not state.regressed
    after = verdicts[last + 1 :]
    assert all(v.median is not None and 2.7 < v.median < 3.3 for v in after)


@pytest.mark.parametrize("seed", range(5))
def test_a_new_level_becomes_the_baseline_once_acknowledged(seed: int) -> None:
    state = regressed_series(seed)
    acked = acknowledge(state, DEFAULT)
    assert not acked.regressed
    assert acked.baseline == state.since
    assert len(acked.baseline) == 2
    # no verdict until min_runs values at the new level, then judged against it
    acked, verdicts = feed(noisy(3.0, 0.05, 20, seed + 9), state=acked)
    assert all(v.median is None for v in verdicts[:4])
    assert all(v.median is not None and 2.7 < v.median < 3.3 for v in verdicts[4:])
    assert fired(verdicts) == []
    # and a further rise from the new level is a new regression
    _, rise = feed([4.5, 4.5], state=acked)
    assert fired(rise) == [(1, "regressed")]


def test_acknowledging_a_series_that_is_not_regressed_keeps_its_baseline() -> None:
    state, _ = feed(noisy(2.0, 0.05, 10, 3))
    state, verdict = observe(state, 9.0, DEFAULT)
    assert verdict.flagged
    assert state.pending == (9.0,)
    acked = acknowledge(state, DEFAULT)
    assert acked.baseline == (*state.baseline, 9.0)
    assert acked.pending == ()


# --- a failed or rerun job never enters a baseline --------------------------------


@pytest.mark.parametrize(
    ("status", "code", "rerun", "clean"),
    [
        ("completed", 200, False, True),
        ("completed", None, False, True),
        ("completed", 304, False, True),
        ("completed", 404, False, False),
        ("completed", 500, False, False),
        ("completed", 0, False, False),
        ("completed", "200", False, False),
        ("completed", True, False, False),
        ("completed", 200, True, False),  # a rerun of a failure
        ("failed", 200, False, False),
        ("expired", None, False, False),
        ("cancelled", 200, False, False),
        (None, 200, False, False),
    ],
)
def test_clean_run(status: object, code: object, rerun: bool, clean: bool) -> None:
    assert clean_run(status, code, rerun_of_failure=rerun) is clean


def test_a_run_that_is_not_clean_never_enters_a_baseline() -> None:
    state, _ = feed(noisy(2.0, 0.05, 10, 4))
    for value in (50.0, 2.0, 0.0):
        new, verdict = observe(state, value, DEFAULT, clean=False)
        assert new == state
        assert verdict.skipped == "not clean"
        assert not verdict.flagged
        assert verdict.fired is None
    # many slow failed runs: no regression, baseline untouched
    new = state
    for value in [9.0] * 30:
        new, verdict = observe(new, value, DEFAULT, clean=False)
        assert verdict.fired is None
    assert new == state
    # nor do they break a streak: flagged, (failed), flagged fires
    state, first = observe(state, 9.0, DEFAULT)
    state, _ = observe(state, 2.0, DEFAULT, clean=False)
    state, second = observe(state, 9.0, DEFAULT)
    assert first.flagged
    assert second.fired == "regressed"


# --- improved after recovery: evidence, the mirror of regressed's --------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("consecutive", [2, 3])
def test_improved_after_recovery(seed: int, consecutive: int) -> None:
    thresholds = Thresholds(consecutive=consecutive)
    state = regressed_series(seed, thresholds)
    frozen = state.baseline
    state, slow = feed(noisy(3.0, 0.05, 5, seed + 3), thresholds, state)
    assert fired(slow) == []
    assert state.baseline == frozen
    # one good run alone is not a recovery (with consecutive >= 2)
    state, verdicts = feed([2.0, 3.0], thresholds, state)
    assert fired(verdicts) == []
    assert state.regressed
    # runs back at (or under) the old median are a full run of evidence each: they fire
    # on the `consecutive`th, as regressed's runs past the band do
    old = statistics.median(frozen)
    state, back = feed(bounded(old * 0.94, 0.05, consecutive, seed + 4), thresholds, state)
    assert fired(back) == [(consecutive - 1, "improved")]
    assert back[-1].recovery == pytest.approx(consecutive)
    assert not state.regressed
    assert state.since == ()
    assert state.recovering == 0
    # the in-band values joined the baseline; the regressed ones did not
    assert max(state.baseline) < 2.5
    assert state.baseline[-consecutive:] == tuple(v.value for v in back)
    # and it can regress again
    state, again = feed([3.0] * consecutive, thresholds, state)
    assert fired(again) == [(consecutive - 1, "regressed")]


@pytest.mark.parametrize("seed", range(10))
def test_a_recovery_in_noise_fires_within_a_few_runs(seed: int) -> None:
    """Back at the old level with its noise (5%): each run is about a run of evidence,
    some less: `improved` within 8 runs (the benchmark: 3, 6 at most, for 40-100% at 5%)."""
    state = regressed_series(seed)
    state, back = feed(noisy(2.0, 0.05, 10, seed + 60), state=state)
    events = fired(back)
    assert events
    assert events[0][1] == "improved"
    assert events[0][0] + 1 <= 8


def test_runs_in_band_without_evidence_are_not_a_recovery() -> None:
    """Just under the old limit is in band, but hardly any evidence (a sliver a run):
    a regressed level that straddles the limit does not look recovered by chance
    (SPEC's rule before did)."""
    state = regressed_series(1)
    judged = band(state.baseline, DEFAULT)
    assert judged is not None
    state, verdicts = feed([judged.limit * 0.999] * 20, state=state)
    assert fired(verdicts) == []
    assert all(v.recovery is not None and v.recovery < 1 for v in verdicts)
    assert state.regressed


def test_evidence_without_runs_in_band_is_not_a_recovery() -> None:
    """Evidence of `consecutive` runs, but the last run is past the old limit: wait."""
    state = regressed_series(2)
    judged = band(state.baseline, DEFAULT)
    assert judged is not None
    state, verdicts = feed([judged.median * 0.5] * 3 + [judged.limit * 1.01], state=state)
    assert fired(verdicts) == [(1, "improved")]  # two runs far under: fired already
    state = regressed_series(2)
    state, verdicts = feed([judged.median * 0.5, judged.limit * 1.01], state=state)
    assert fired(verdicts) == []
    assert verdicts[-1].recovery is not None
    assert verdicts[-1].recovery > 0
    state, verdicts = feed([judged.median * 0.9], state=state)
    assert fired(verdicts) == []  # evidence enough now, but only one run back in band
    state, verdicts = feed([judged.median * 0.9], state=state)
    assert fired(verdicts) == [(0, "improved")]


@pytest.mark.parametrize("seed", range(8))
def test_a_lasting_25_percent_regression_at_10_percent_noise_does_not_flap(seed: int) -> None:
    """The issue's case: after a 25% step at 10% noise, a third of the runs fall under
    the old limit by chance. One `regressed` at most, no `improved`, and the level
    becomes the baseline after `baseline.runs` runs (SPEC's rule before flapped: 359
    false `improved` in 300 such series of 1,000 runs)."""
    state, _ = feed(noisy(2.0, 0.10, 40, seed + 300))
    state, verdicts = feed(noisy(2.5, 0.10, 1000, seed + 400), state=state)
    events = [kind for _, kind in fired(verdicts)]
    assert events in ([], ["regressed"])


def test_the_recovery_line_is_a_third_of_the_way_up_or_the_limit() -> None:
    state, _ = feed([1.9, 2.0, 2.1] * 20)
    judged = band(state.baseline, DEFAULT)
    assert judged is not None
    assert judged.recovery_line(()) == judged.limit
    assert judged.recovery_line((2.3, 2.25, 2.35)) == pytest.approx(2.0 * (2.3 / 2.0) ** (1 / 3))
    assert judged.recovery_line((9.0,) * 3) == judged.limit  # a large regression
    zero = band((0.0,) * 10, DEFAULT)
    assert zero is not None
    assert zero.recovery_line((0.3,)) == pytest.approx(0.1)  # the floor (a third is 0.1)
    assert zero.recovery_weight(0.1, 0.0) == 1.0
    assert zero.recovery_weight(0.1, 0.2) == -1.0


# --- bad values are skipped --------------------------------------------------------

BAD: list[object] = [
    None,
    math.nan,
    math.inf,
    -math.inf,
    -1.0,
    -0.001,
    "2.0",
    "",
    "slow",
    True,
    False,
    [2.0],
    {"value": 2.0},
    10**400,
    object(),
]


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_bad_values_are_skipped(value: object) -> None:
    assert clean_number(value) is None
    for state in (SeriesState(), feed(noisy(2.0, 0.05, 10, 5))[0], regressed_series(5)):
        new, verdict = observe(state, value, DEFAULT)
        assert new == state
        assert verdict.skipped == "bad value"
        assert not verdict.flagged
        assert verdict.fired is None
        assert verdict.value is None


def test_bad_values_never_fire_or_break_a_streak() -> None:
    state, _ = feed(noisy(2.0, 0.05, 10, 6))
    mixed: list[object] = [9.0, *BAD, 9.0]
    _, verdicts = feed(mixed, state=state)
    assert fired(verdicts) == [(len(mixed) - 1, "regressed")]
    _, verdicts = feed([*BAD] * 5, state=state)
    assert fired(verdicts) == []


@pytest.mark.parametrize("value", [0, 0.0, 2, 2.5, 10**6])
def test_good_values_are_taken(value: float) -> None:
    assert clean_number(value) == float(value)


# --- thresholds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mad_k": -1},
        {"relative": math.nan},
        {"absolute": math.inf},
        {"runs": 0},
        {"min_runs": 0},
        {"consecutive": 0},
        {"consecutive": 1.5},
        {"runs": True},
        {"runs": 5, "min_runs": 6},
    ],
)
def test_thresholds_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # the message names the field
        Thresholds(**kwargs)  # type: ignore[arg-type]


# --- the state's JSON: round trip, bounded size -------------------------------------


def test_state_json_round_trip_through_a_whole_life() -> None:
    values = [
        *noisy(2.0, 0.05, 30, 7),
        9.0,
        *noisy(2.0, 0.05, 3, 8),
        *noisy(3.0, 0.05, 8, 9),
        *noisy(2.0, 0.05, 3, 10),
        *noisy(3.0, 0.05, 30, 11),
    ]
    state = SeriesState()
    stored = state
    seen_regressed = seen_pending = False
    for value in values:
        state, verdict = observe(state, value, DEFAULT)
        stored, again = observe(SeriesState.from_json(stored.to_json()), value, DEFAULT)
        assert stored == state
        assert again == verdict
        seen_regressed |= state.regressed
        seen_pending |= bool(state.pending)
    assert seen_regressed
    assert seen_pending


@pytest.mark.parametrize("consecutive", [1, 2, 3])
@pytest.mark.parametrize("runs", [6, 20, 50])
def test_state_is_bounded(runs: int, consecutive: int) -> None:
    thresholds = Thresholds(runs=runs, min_runs=min(6, runs), consecutive=consecutive)
    rng = random.Random(runs * 10 + consecutive)
    state = SeriesState()
    largest = 0
    for i in range(2000):
        level = 2.0 if (i // 150) % 2 == 0 else 3.5  # regressions, recoveries, adoptions
        value = level * (1 + rng.gauss(0, 0.03)) * (3 if rng.random() < 0.02 else 1)
        state, _ = observe(state, value, thresholds)
        stored = len(state.baseline) + len(state.pending) + len(state.since)
        assert len(state.baseline) <= runs
        # not regressed: the baseline and the excursion (at most runs // 2 values)
        assert stored <= (2 * runs - 1 if state.regressed else runs + max(consecutive, runs // 2))
        largest = max(largest, len(state.to_json()))
    assert largest < 60 * (2 * runs)  # about 20 bytes a number


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"v": 2, "b": []}',
        b'{"v": 1, "b": [1, "x"]}',
        b'{"v": 1, "b": [1, -2]}',
        b'{"v": 1, "b": {}}',
        b'{"v": 1, "b": [], "r": 1}',
        b'{"v": 1, "b": [], "c": -1, "r": true}',
        b'{"v": 1, "b": [], "p": [1], "r": true}',
        b'{"v": 1, "b": [], "s": [1]}',
        b'{"v": 1, "b": [], "r": true, "s": [1], "c": 2}',
        b'{"v": 1, "b": [], "r": true, "s": [1], "e": 1}',
        b'{"v": 1, "b": [], "r": true, "s": [1, 2], "e": -1}',
        b'{"v": 1, "b": [], "r": true, "s": [1, 2], "e": true}',
        b'{"v": 1, "b": [], "e": 1}',
        b"\xff\xfe",
    ],
)
def test_state_from_bad_json_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="series state"):
        SeriesState.from_json(data)


def test_an_empty_state_is_tiny() -> None:
    assert SeriesState().to_json() == b'{"v":1,"b":[]}'
    assert SeriesState.from_json('{"v":1,"b":[]}') == SeriesState()


# --- the evidence: small rises add up, noise never does ------------------------------


def test_a_25_percent_step_in_10_percent_noise_fires_after_several_runs() -> None:
    """2.2 standard deviations a run: no single run is past the band (+49% here), but
    the evidence of the runs between the limit and the band adds up."""
    delays = []
    for seed in range(20):
        state, before = feed(noisy(2.0, 0.10, 60, seed))
        assert fired(before) == []
        state, after = feed(noisy(2.5, 0.10, 60, seed + 500), state=state)
        events = fired(after)
        if events:
            assert events[0][1] == "regressed"
            delays.append(events[0][0] + 1)
    assert len(delays) >= 13  # measured: 15 of 20, median 6 runs (the benchmark: 80%)
    assert statistics.median(delays) <= 10


@pytest.mark.parametrize("cv", [0.02, 0.05, 0.10])
def test_stable_noise_never_fires(cv: float) -> None:
    for seed in range(3):
        _, verdicts = feed(noisy(2.0, cv, 1000, seed + 40))
        assert fired(verdicts) == []


def test_evidence_between_the_limit_and_the_band() -> None:
    state, _ = feed([1.9, 2.0, 2.1] * 20)
    judged = band(state.baseline, DEFAULT)
    assert judged is not None
    assert judged.median == 2.0
    assert judged.limit < judged.full
    midway = judged.limit * math.sqrt(judged.full / judged.limit)  # half a run (in logs)
    assert judged.weight(midway) == pytest.approx(0.5)
    assert judged.weight(judged.full * 10) == 1.0  # an outlier counts as one run, no more
    assert judged.weight(0.0) == -1.0
    state, verdicts = feed([midway] * 4, state=state)
    assert [v.evidence for v in verdicts] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert [v.flagged for v in verdicts] == [True] * 4
    assert fired(verdicts) == [(3, "regressed")]
    assert state.since == (midway,) * 4  # the regression began with its excursion


def test_values_below_the_limit_take_evidence_away() -> None:
    state, _ = feed([1.9, 2.0, 2.1] * 20)
    judged = band(state.baseline, DEFAULT)
    assert judged is not None
    midway = judged.limit * math.sqrt(judged.full / judged.limit)
    state, verdicts = feed([midway, 2.0, midway, 2.0, midway, 2.0], state=state)
    assert fired(verdicts) == []
    assert state.pending == ()  # each excursion ended: its values joined the baseline
    assert midway in state.baseline


def test_an_excursion_keeps_at_most_half_the_window() -> None:
    thresholds = Thresholds(runs=40, mad_k=400)  # a wide band: evidence comes slowly
    state, _ = feed([1.9, 2.0, 2.1] * 14, thresholds)
    judged = band(state.baseline, thresholds)
    assert judged is not None
    slightly = judged.limit * 1.001
    state, verdicts = feed([slightly] * 20, thresholds, state)
    assert len(state.pending) == 20
    assert slightly not in state.baseline
    state, verdicts = feed([slightly], thresholds, state)
    assert len(state.pending) == 20  # runs // 2: the oldest one joined the baseline
    assert state.baseline[-1] == slightly
    assert fired(verdicts) == []


def test_a_small_baseline_is_widened() -> None:
    """Six values whose MAD came out tiny (four of them nearly equal): the band counts
    the mean absolute deviation and 20 / 6 of the scale, so two +20% runs do not fire."""
    values = [2.0, 2.001, 1.999, 2.0005, 1.7, 2.3]
    thresholds = Thresholds()
    state, _ = feed(values, thresholds)
    judged = band(state.baseline, thresholds)
    assert judged is not None
    assert judged.scale < 0.01
    assert judged.full > 2.0 * 1.5
    _, verdicts = feed([2.4, 2.4], thresholds, state)
    assert fired(verdicts) == []
    wide = band(tuple(values) * 4, thresholds)  # 24 values alike: no widening
    assert wide is not None
    assert wide.full < judged.full


def test_wild_values_never_overflow() -> None:
    state, _ = feed([1e-300, 1e300, 1.0, 1e-300, 1e300, 1.0])
    for value in (1e308, 0.0, 1.0, 1e-308):
        state, verdict = observe(state, value, DEFAULT)
        assert verdict.limit is not None
        assert not math.isnan(verdict.limit)


def test_sizes_and_constant_series_count_runs_past_the_floor() -> None:
    """With nothing between the limit and the band (no MAD part, or a MAD of 0) every
    run past the floor is one run of evidence and every other takes one away: SPEC's
    `consecutive` runs in a row."""
    sizes = Thresholds.for_metric("pageSize")
    state, _ = feed([1_000_000] * 10, sizes)
    _, verdicts = feed([1_200_000, 1_000_000, 1_200_000, 1_200_000], sizes, state)
    assert [v.evidence for v in verdicts] == [1.0, 0.0, 1.0, 2.0]
    assert fired(verdicts) == [(3, "regressed")]


def test_the_verdict_carries_the_evidence_through_json() -> None:
    state, _ = feed(noisy(2.0, 0.05, 30, 12))
    judged = band(state.baseline, DEFAULT)
    assert judged is not None
    state, verdict = observe(state, judged.full, DEFAULT)
    assert verdict.evidence == pytest.approx(1.0)
    assert verdict.scale is not None
    assert 0.02 < verdict.scale < 0.08
    again = SeriesState.from_json(state.to_json())
    assert again == state
    _, skipped = observe(again, None, DEFAULT)
    assert skipped.evidence == pytest.approx(1.0)  # recomputed from the excursion
