"""The regression statistics of one series: pure, no I/O, no store.

A series is (template, page URL, browser, metric); this module sees only its values.
The caller keeps a `SeriesState` per series (small, immutable, `to_json`/`from_json`),
hands each new test run's value to `observe` with the series' `Thresholds`, stores the
state it gets back and acts on the `Verdict` (`fired` is `"regressed"`, `"improved"` or
None; the rest is what `watcher explain` shows).

The rules (SPEC, "Performance-aware events", `regressed`):

- The baseline is the median and the MAD (median absolute deviation) of the last
  `runs` clean values. No verdict before `min_runs` of them.
- A value is flagged when it exceeds `median + max(mad_k * 1.4826 * MAD,
  relative * median, absolute)`; strictly: a value on the limit is in band. Size and
  count metrics (`pageSize`, `objectCount`) use only the relative and absolute parts.
  Only a rise is flagged: every metric here is better lower.
- `consecutive` flagged values in a row fire `regressed`, once per regression.
- While regressed, the baseline is frozen at its pre-regression window: the regressed
  values never enter it (they are kept apart, in `since`, at most `runs` of them).
- `improved` fires when a regressed series is back within its band for `consecutive`
  values in a row; those in-band values join the baseline, the regressed ones are
  dropped.
- A new level becomes the baseline (i) when acknowledged (`acknowledge`): the values
  since the regression began become the whole baseline, so the series gives no verdict
  until it has `min_runs` values at its new level; or (ii) by itself once the series has
  been regressed for `runs` values without recovering: the last `runs` values become the
  baseline and the series is no longer regressed. That fires nothing (the regression was
  announced once already; a lasting level is not news), and the verdict says `adopted`.
  A later return to the old level is then a drop, which is never flagged, so it fires
  no `improved` either.
- Flagged values that do not make a streak (a lone outlier) are held in `pending` and
  join the baseline once an in-band value breaks the streak: real noise keeps the band
  honest, and a spike never moves a median much.
- Not clean runs (failed jobs, error result codes, reruns of a failure: see `clean_run`)
  are passed with `clean=False` and change nothing; bad values (None, NaN, infinities,
  negatives, booleans, strings, anything not a real number) are skipped the same way.
  Neither breaks a streak: a skipped run is a run that did not happen.

Units: values and `absolute` are in the metric's own unit. The API gives timings in
seconds, so the default `absolute` for a timing is 0.1 (100 ms); for `pageSize` (bytes)
and `objectCount` it is 0: their floor is the relative part alone. Any other numeric
metric gets the MAD and relative parts and an absolute floor of 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import median
from typing import Any, Literal

import msgspec

MAD_SCALE = 1.4826  # the MAD of a normal distribution times this is its standard deviation

TIME_METRICS = frozenset(
    {
        "dataStartDuration",
        "renderStart",
        "domLoad",
        "onLoad",
        "visuallyComplete",
        "downloadDuration",
        "speedIndex",
    }
)
SIZE_METRICS = frozenset({"pageSize", "objectCount"})  # relative and absolute parts only

DEFAULT_TIME_ABSOLUTE = 0.1  # seconds (100 ms): timings come in seconds
DEFAULT_SIZE_ABSOLUTE = 0.0  # bytes for pageSize, objects for objectCount
DEFAULT_OTHER_ABSOLUTE = 0.0
RECENT = 20  # values a verdict carries for `event.runs` and the chart

Fired = Literal["regressed", "improved"]
Skipped = Literal["not clean", "bad value"]
Bound = Literal["mad", "relative", "absolute"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The knobs of one series; defaults are SPEC's (a timing in seconds)."""

    mad_k: float = 4.0
    relative: float = 0.10  # a fraction of the median: 0.10 is 10%
    absolute: float = DEFAULT_TIME_ABSOLUTE  # in the metric's unit
    use_mad: bool = True  # False for size and count metrics
    runs: int = 20  # baseline.runs: the baseline's window
    min_runs: int = 6  # baseline.min_runs: no verdict with fewer
    consecutive: int = 2  # flagged (or, once regressed, in-band) runs in a row

    def __post_init__(self) -> None:
        problems = []
        for name in ("mad_k", "relative", "absolute"):
            number = getattr(self, name)
            if not _is_number(number) or number < 0:
                problems.append(f"{name} must be a finite number >= 0, not {number!r}")
        for name in ("runs", "min_runs", "consecutive"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                problems.append(f"{name} must be a whole number >= 1, not {count!r}")
        if not problems and self.min_runs > self.runs:
            problems.append(f"min_runs ({self.min_runs}) must be at most runs ({self.runs})")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def for_metric(
        cls,
        metric: str,
        *,
        mad_k: float = 4.0,
        relative: float = 0.10,
        absolute: float | None = None,
        runs: int = 20,
        min_runs: int = 6,
        consecutive: int = 2,
    ) -> Thresholds:
        """The thresholds of a metric: no MAD part for sizes and counts, and the
        absolute floor of its kind unless given (in the metric's unit)."""
        if absolute is None:
            if metric in TIME_METRICS:
                absolute = DEFAULT_TIME_ABSOLUTE
            elif metric in SIZE_METRICS:
                absolute = DEFAULT_SIZE_ABSOLUTE
            else:
                absolute = DEFAULT_OTHER_ABSOLUTE
        return cls(
            mad_k=mad_k,
            relative=relative,
            absolute=absolute,
            use_mad=metric not in SIZE_METRICS,
            runs=runs,
            min_runs=min_runs,
            consecutive=consecutive,
        )


@dataclass(frozen=True, slots=True)
class SeriesState:
    """What a series remembers between runs, oldest first everywhere. Bounded: at most
    `runs` + `consecutive` - 1 values when not regressed (the baseline and `pending`),
    and 2 x `runs` - 1 while regressed (the frozen baseline and `since`, which must hold
    up to `runs` values to become the baseline of a lasting new level): 39 numbers and
    well under a kilobyte of JSON with the defaults."""

    baseline: tuple[float, ...] = ()  # the last clean values in the baseline's window
    regressed: bool = False
    pending: tuple[float, ...] = ()  # flagged values in a row (the streak), not yet a regression
    since: tuple[float, ...] = ()  # while regressed: every value since it began
    clear_streak: int = 0  # while regressed: in-band values in a row

    def to_json(self) -> bytes:
        """Small and stable: short keys, empty parts left out."""
        doc: dict[str, Any] = {"v": 1, "b": list(self.baseline)}
        if self.regressed:
            doc["r"] = True
        if self.pending:
            doc["p"] = list(self.pending)
        if self.since:
            doc["s"] = list(self.since)
        if self.clear_streak:
            doc["c"] = self.clear_streak
        return msgspec.json.encode(doc)

    @classmethod
    def from_json(cls, data: bytes | str) -> SeriesState:
        """The inverse of `to_json`; ValueError on anything else (the caller starts
        the series afresh: a lost baseline costs `min_runs` runs, never a false alarm)."""
        try:
            doc = msgspec.json.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"series state is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise ValueError("series state: not a version 1 document")
        regressed = doc.get("r", False)
        clear = doc.get("c", 0)
        if not isinstance(regressed, bool):
            raise ValueError("series state: r must be a boolean")
        if isinstance(clear, bool) or not isinstance(clear, int) or clear < 0:
            raise ValueError("series state: c must be a whole number >= 0")
        state = cls(
            baseline=_values(doc.get("b", []), "b"),
            regressed=regressed,
            pending=_values(doc.get("p", []), "p"),
            since=_values(doc.get("s", []), "s"),
            clear_streak=clear,
        )
        if state.regressed and state.pending:
            raise ValueError("series state: pending values while regressed")
        if not state.regressed and (state.since or state.clear_streak):
            raise ValueError("series state: regression values while not regressed")
        if state.clear_streak > len(state.since):
            raise ValueError("series state: more in-band values than values since")
        return state


@dataclass(frozen=True, slots=True)
class Verdict:
    """One value against its series' baseline: what `watcher explain` shows.

    `median`, `mad` and `limit` are None before `min_runs` (no verdict: never flagged);
    `delta` is value - median, `percent` that as a percentage of the median (None when
    the median is 0). `bound` names the part of the margin that set the limit."""

    value: float | None
    flagged: bool = False
    fired: Fired | None = None
    median: float | None = None
    mad: float | None = None
    limit: float | None = None
    delta: float | None = None
    percent: float | None = None
    bound: Bound | None = None
    runs: int = 0  # values in the baseline it was judged against
    regressed: bool = False  # the series' state after this value
    adopted: bool = False  # a lasting new level became the baseline with this value
    skipped: Skipped | None = None
    recent: tuple[float, ...] = ()  # the series' last values (up to RECENT), oldest first


@dataclass(frozen=True, slots=True)
class Band:
    """A baseline's numbers: the value above `limit` is flagged."""

    median: float
    mad: float
    limit: float
    bound: Bound


def band(values: tuple[float, ...], thresholds: Thresholds) -> Band | None:
    """The band of a baseline, or None with fewer than `min_runs` values."""
    if len(values) < thresholds.min_runs:
        return None
    middle = median(values)
    mad = median(abs(v - middle) for v in values)
    parts: list[tuple[float, Bound]] = [
        (thresholds.relative * middle, "relative"),
        (thresholds.absolute, "absolute"),
    ]
    if thresholds.use_mad:
        parts.insert(0, (thresholds.mad_k * MAD_SCALE * mad, "mad"))
    margin, bound = max(parts, key=lambda part: part[0])  # first of equals: mad, relative
    return Band(median=middle, mad=mad, limit=middle + margin, bound=bound)


def clean_number(value: object) -> float | None:
    """A metric's value as a float, or None if it is not one a baseline can take: None,
    booleans, strings, NaN, infinities and negatives are not."""
    if not _is_number(value):
        return None
    number = float(value)  # type: ignore[arg-type]  # _is_number checked int or float
    return number if number >= 0 else None


def clean_run(status: object, result_code: object = None, *, rerun_of_failure: bool) -> bool:
    """Whether a test run may enter a baseline: its job completed, its result code is
    not an error (a missing one is not evidence of an error; 100-399 is fine; anything
    else, 0 and strings included, is not) and its job is not a rerun of a failure."""
    if status != "completed" or rerun_of_failure:
        return False
    if result_code is None:
        return True
    if isinstance(result_code, bool) or not isinstance(result_code, int):
        return False
    return 100 <= result_code < 400


def observe(
    state: SeriesState, value: object, thresholds: Thresholds, *, clean: bool = True
) -> tuple[SeriesState, Verdict]:
    """Judge one new value of a series; returns the state to store and the verdict.

    `clean=False` (a failed job, an error result code, a rerun of a failure) and a bad
    value leave the state as it was: the run never enters a baseline and breaks no
    streak."""
    if not clean:
        return state, _skip(state, value, "not clean", thresholds)
    number = clean_number(value)
    if number is None:
        return state, _skip(state, value, "bad value", thresholds)
    if state.regressed:
        return _observe_regressed(state, number, thresholds)
    return _observe_normal(state, number, thresholds)


def acknowledge(state: SeriesState, thresholds: Thresholds) -> SeriesState:
    """Adopt a regressed series' current level as its baseline: the values since the
    regression began (the last `runs` of them) become the whole baseline, so there is
    no verdict until it has `min_runs` values. A series that is not regressed keeps its
    baseline (pending flagged values join it)."""
    if not state.regressed:
        return SeriesState(baseline=_window(state.baseline + state.pending, thresholds))
    return SeriesState(baseline=_window(state.since, thresholds))


def _observe_normal(
    state: SeriesState, value: float, thresholds: Thresholds
) -> tuple[SeriesState, Verdict]:
    judged = band(state.baseline, thresholds)
    if judged is None:  # no verdict yet: every clean value builds the baseline
        history = _window(state.baseline + state.pending + (value,), thresholds)
        new = SeriesState(baseline=history)
        return new, _verdict(new, value, None, len(state.baseline), flagged=False)
    if value <= judged.limit:
        new = SeriesState(baseline=_window(state.baseline + state.pending + (value,), thresholds))
        return new, _verdict(new, value, judged, len(state.baseline), flagged=False)
    pending = (*state.pending, value)
    if len(pending) >= thresholds.consecutive:
        new = SeriesState(
            baseline=state.baseline, regressed=True, since=pending[-thresholds.runs :]
        )
        return new, _verdict(new, value, judged, len(state.baseline), True, fired="regressed")
    new = replace(state, pending=pending)
    return new, _verdict(new, value, judged, len(state.baseline), flagged=True)


def _observe_regressed(
    state: SeriesState, value: float, thresholds: Thresholds
) -> tuple[SeriesState, Verdict]:
    judged = band(state.baseline, thresholds)
    if judged is None:  # a frozen baseline that lost its verdict (min_runs raised since)
        new = SeriesState(baseline=_window((*state.baseline, value), thresholds))
        return new, _verdict(new, value, None, len(state.baseline), flagged=False)
    flagged = value > judged.limit
    since = (*state.since, value)
    clear = 0 if flagged else state.clear_streak + 1
    if clear >= thresholds.consecutive:  # back in band: the in-band tail joins the baseline
        new = SeriesState(baseline=_window(state.baseline + since[-clear:], thresholds))
        return new, _verdict(new, value, judged, len(state.baseline), False, fired="improved")
    if len(since) >= thresholds.runs:  # a lasting new level: it becomes the baseline
        new = SeriesState(baseline=_window(since, thresholds))
        verdict = _verdict(new, value, judged, len(state.baseline), flagged, adopted=True)
        return new, verdict
    new = SeriesState(baseline=state.baseline, regressed=True, since=since, clear_streak=clear)
    return new, _verdict(new, value, judged, len(state.baseline), flagged)


def _verdict(
    new: SeriesState,
    value: float,
    judged: Band | None,
    runs: int,
    flagged: bool,
    *,
    fired: Fired | None = None,
    adopted: bool = False,
) -> Verdict:
    recent = _recent(new)
    if judged is None:
        return Verdict(
            value=value, runs=runs, regressed=new.regressed, adopted=adopted, recent=recent
        )
    delta = value - judged.median
    percent = 100.0 * delta / judged.median if judged.median > 0 else None
    return Verdict(
        value=value,
        flagged=flagged,
        fired=fired,
        median=judged.median,
        mad=judged.mad,
        limit=judged.limit,
        delta=delta,
        percent=percent,
        bound=judged.bound,
        runs=runs,
        regressed=new.regressed,
        adopted=adopted,
        recent=recent,
    )


def _skip(state: SeriesState, value: object, why: Skipped, thresholds: Thresholds) -> Verdict:
    judged = band(state.baseline, thresholds)
    shown = clean_number(value)
    return Verdict(
        value=shown,
        median=judged.median if judged else None,
        mad=judged.mad if judged else None,
        limit=judged.limit if judged else None,
        bound=judged.bound if judged else None,
        runs=len(state.baseline),
        regressed=state.regressed,
        skipped=why,
        recent=_recent(state),
    )


def _recent(state: SeriesState) -> tuple[float, ...]:
    return (state.baseline + state.since + state.pending)[-RECENT:]


def _window(values: tuple[float, ...], thresholds: Thresholds) -> tuple[float, ...]:
    return values[-thresholds.runs :]


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int past a float's range
        return False


def _values(raw: object, key: str) -> tuple[float, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"series state: {key} must be a list")
    values = tuple(clean_number(v) for v in raw)
    if any(v is None for v in values):
        raise ValueError(f"series state: {key} holds a value that is not a number >= 0")
    return values  # type: ignore[return-value]  # no None left
