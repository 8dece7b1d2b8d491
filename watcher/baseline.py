"""The regression statistics of one series: pure, no I/O, no store.

A series is (template, page URL, browser, metric); this module sees only its values.
The caller keeps a `SeriesState` per series (small, immutable, `to_json`/`from_json`),
hands each new test run's value to `observe` with the series' `Thresholds`, stores the
state it gets back and acts on the `Verdict` (`fired` is `"regressed"`, `"improved"` or
None; the rest is what `watcher explain` shows).

The rules (SPEC, "Performance-aware events", `regressed`):

- The baseline is the median and the MAD (median absolute deviation) of the last
  `runs` clean values. No verdict before `min_runs` of them. Its *scale* is the noise
  of the series in relative terms: 1.4826 x the MAD of the logarithms of the values
  around the log of the median (about the coefficient of variation; 0 for a constant
  series and for size and count metrics, which use only the relative and absolute
  parts). A baseline of fewer than `SMALL_BASELINE` (20) values is a loose estimate:
  its scale is the larger of that and 1.2533 x the mean absolute deviation of the logs,
  times 20 / values.
- Two lines above the median, each the largest of a noise part, `median x (1 +
  relative)` and `median + absolute` (the floors): the *limit*, whose noise part is
  `median x exp(allowance x scale)`, and the *band*, whose noise part is
  `median x exp(mad_k x scale)` (SPEC's band before, taken on the logarithms). A value
  above the limit is *flagged* (strictly: a value on the limit is in band). Only a rise
  counts: every metric here is better lower.
- Evidence accumulates over runs, as a one-sided CUSUM on the logarithms: each run adds
  `ln(value / limit) / ln(band / limit)`, clipped to [-1, 1], and the evidence never
  goes below 0. So a run at or above the band adds one full run's worth, a run between
  the limit and the band a fraction of one, a run below the limit takes some away, and
  no single run (an outlier) adds more than one. When the band and the limit are the
  same (a scale of 0, sizes and counts, or floors above both noise parts) every flagged
  run adds 1 and every other run takes 1 away. `regressed` fires when the evidence
  reaches `consecutive`, once per regression: `consecutive` runs above the band fire
  at once (SPEC's rule before); a smaller rise fires after more runs; one within the
  noise (below the limit on average) never.
- The values of an excursion (the runs since the evidence was last 0) are kept apart,
  in `pending`, and join the baseline when the evidence is back to 0 (noise keeps the
  band honest, a spike never moves a median much). An excursion keeps at most `runs`
  // 2 values: older ones join the baseline, so a baseline that came out low is never
  frozen there while noise hovers above its limit (that made false alarms), and a rise
  too small to prove becomes the level.
- While regressed, the baseline is frozen at its pre-regression window: the regressed
  values never enter it (they are kept apart, in `since`, at most `runs` of them).
- `improved` needs evidence too, the mirror of `regressed`'s: while regressed, a second
  one-sided CUSUM adds up how far runs fall under a *recovery line*, the lower of the
  old limit and the point a third of the way (in logs) from the old median up to the
  regressed level (the median of the regressed values before the current recovery
  excursion; a third because those values were picked by the CUSUM for being high). Each run
  adds `ln(line / value) / ln(band / limit)` (the regression's share: evidence in the
  same units of noise), clipped to [-1, 1], never below 0 (share 0: +1 at or under the
  line, -1 above). `improved` fires when that evidence reaches `consecutive` *and* the
  last `consecutive` values are within the old limit (SPEC's rule before). Those
  in-band values join the baseline, the regressed ones are dropped. Why: a regression
  of 25% in 10% noise sits about one standard deviation above the old limit, so a third
  of its runs fall under it by chance, and "`consecutive` values in band" alone called
  half such regressions recovered within a few dozen runs, then regressed again (two
  alerts for one regression and a false `improved` between them). The line a third of
  the way up is about 1.5 standard deviations under such a regressed level, and the
  evidence asks for about four standard deviations under it in all; a real recovery
  still fires in 2-3 runs when the regression was large, about 5 (12 at most) when it
  was as small as that (`benchmarks/README.md`).
- A new level becomes the baseline (i) when acknowledged (`acknowledge`): the values
  since the regression began become the whole baseline, so the series gives no verdict
  until it has `min_runs` values at its new level; or (ii) by itself once the series has
  been regressed for `runs` values without recovering: the last `runs` values become the
  baseline and the series is no longer regressed. That fires nothing (the regression was
  announced once already; a lasting level is not news), and the verdict says `adopted`.
  A later return to the old level is then a drop, which is never flagged, so it fires
  no `improved` either.
- Not clean runs (failed jobs, error result codes, reruns of a failure: see `clean_run`)
  are passed with `clean=False` and change nothing; bad values (None, NaN, infinities,
  negatives, booleans, strings, anything not a real number) are skipped the same way.
  Neither breaks a streak: a skipped run is a run that did not happen.

Why a CUSUM and not "`consecutive` values above a band" (SPEC before): with log-normal
noise of 10% a rise of 25% is about 2.2 standard deviations a run. A band wide enough
never to fire on noise (about 4 sigma) misses such a rise; a narrower one fires on
noise, in clusters, whenever a window's MAD came out small. Adding up the evidence of
several runs detects most such rises in about 7 runs, and the defaults (`mad_k` 4,
`allowance` 2, `runs` 60) gave no false alarm in 350,000 runs of stable noise of 10%
(`benchmarks/false_alarms.py`, `benchmarks/README.md`).

Units: values and `absolute` are in the metric's own unit. The API gives timings in
seconds, so the default `absolute` for a timing is 0.1 (100 ms); for `pageSize` (bytes)
and `objectCount` it is 0: their floor is the relative part alone. Any other numeric
metric gets the MAD and relative parts and an absolute floor of 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any, Literal

import msgspec

MAD_SCALE = 1.4826  # the MAD of a normal distribution times this is its standard deviation
MEAN_AD_SCALE = 1.2533  # the same for the mean absolute deviation (sqrt(pi / 2))

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
DEFAULT_MAD = 4.0  # the band: a run 4 robust sigmas up (or past the floors) counts fully
DEFAULT_ALLOWANCE = 2.0  # a rise of 2 robust sigmas (or the floors) is noise
DEFAULT_RUNS = 60  # the baseline's window: the scale of 20 values is too loose
SMALL_BASELINE = 20  # below this many values the scale counts as scale x 20 / values
# the recovery line's place from the old median up to the regressed level, in logs: a
# third, not half, because that level is estimated from the runs that fired, picked for
# being high (halfway let 4 of 361 regressions of 25% at 10% noise "recover" while held)
RECOVERY_LINE = 1 / 3

Fired = Literal["regressed", "improved"]
Skipped = Literal["not clean", "bad value"]
Bound = Literal["mad", "relative", "absolute"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The knobs of one series; defaults are SPEC's (a timing in seconds)."""

    mad_k: float = DEFAULT_MAD  # the band (a full run of evidence), in robust sigmas
    relative: float = 0.10  # a fraction of the median: 0.10 is 10%
    absolute: float = DEFAULT_TIME_ABSOLUTE  # in the metric's unit
    use_mad: bool = True  # False for size and count metrics
    runs: int = DEFAULT_RUNS  # baseline.runs: the baseline's window
    min_runs: int = 6  # baseline.min_runs: no verdict with fewer
    consecutive: int = 2  # runs' worth of evidence to fire (once regressed: in-band runs)
    allowance: float = DEFAULT_ALLOWANCE  # rise within the noise, in robust sigmas

    def __post_init__(self) -> None:
        problems = []
        for name in ("mad_k", "relative", "absolute", "allowance"):
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
        mad_k: float = DEFAULT_MAD,
        relative: float = 0.10,
        absolute: float | None = None,
        runs: int = DEFAULT_RUNS,
        min_runs: int = 6,
        consecutive: int = 2,
        allowance: float = DEFAULT_ALLOWANCE,
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
            allowance=allowance,
        )


@dataclass(frozen=True, slots=True)
class SeriesState:
    """What a series remembers between runs, oldest first everywhere. Bounded: at most
    `runs` + `runs` // 2 values when not regressed (the baseline and `pending`, the
    excursion that may become a regression) and 2 x `runs` - 1 while regressed (the
    frozen baseline and `since`, which must hold up to `runs` values to become the
    baseline of a lasting new level): 119 numbers and about 2.3 KB of JSON with the
    defaults. The evidence is not stored: it is recomputed from `pending` against the
    baseline (the same document as before this rule: version 1)."""

    baseline: tuple[float, ...] = ()  # the last clean values in the baseline's window
    regressed: bool = False
    pending: tuple[float, ...] = ()  # the excursion: values since the evidence was last 0
    since: tuple[float, ...] = ()  # while regressed: every value since it began
    clear_streak: int = 0  # while regressed: in-band values in a row
    recovering: int = 0  # while regressed: the last values of `since` that may be a recovery

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
        if self.recovering:
            doc["e"] = self.recovering
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
        recovering = doc.get("e", 0)
        if not isinstance(regressed, bool):
            raise ValueError("series state: r must be a boolean")
        for key, count in (("c", clear), ("e", recovering)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"series state: {key} must be a whole number >= 0")
        state = cls(
            baseline=_values(doc.get("b", []), "b"),
            regressed=regressed,
            pending=_values(doc.get("p", []), "p"),
            since=_values(doc.get("s", []), "s"),
            clear_streak=clear,
            recovering=recovering,
        )
        if state.regressed and state.pending:
            raise ValueError("series state: pending values while regressed")
        if not state.regressed and (state.since or state.clear_streak or state.recovering):
            raise ValueError("series state: regression values while not regressed")
        if state.clear_streak > len(state.since):
            raise ValueError("series state: more in-band values than values since")
        if state.since and state.recovering >= len(state.since):
            raise ValueError("series state: a recovery longer than the regression")
        return state


@dataclass(frozen=True, slots=True)
class Verdict:
    """One value against its series' baseline: what `watcher explain` shows.

    `median`, `mad` and `limit` are None before `min_runs` (no verdict: never flagged);
    `delta` is value - median, `percent` that as a percentage of the median (None when
    the median is 0). `bound` names the part of the margin that set the limit. `scale`
    is the robust relative noise (1.4826 x MAD of the logs); `evidence` the runs' worth
    of evidence after this value (`regressed` fires when it reaches `consecutive`);
    `recovery` while regressed, the evidence of a recovery (`improved` fires when it
    reaches `consecutive` and the last `consecutive` values are in band) and `line`, the
    recovery line its runs are measured against."""

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
    scale: float | None = None
    evidence: float | None = None
    recovery: float | None = None
    line: float | None = None


@dataclass(frozen=True, slots=True)
class Band:
    """A baseline's numbers: the value above `limit` is flagged, one at or above `full`
    (the band) adds a full run of evidence; a run adds ln(value / limit) / `share` of
    evidence, clipped to [-1, 1] (`share` 0: +1 when flagged, -1 otherwise)."""

    median: float
    mad: float
    limit: float
    bound: Bound
    scale: float = 0.0  # 1.4826 x the MAD of the logs: the relative noise
    full: float = 0.0  # a value at or above this adds one full run of evidence
    share: float = 0.0  # ln(full / limit): the log rise above the limit worth one run

    def weight(self, value: float) -> float:
        """The evidence one value adds (or takes away when negative), in runs."""
        if self.share <= 0 or value <= 0 or self.limit <= 0:
            return 1.0 if value > self.limit else -1.0
        return max(-1.0, min(1.0, math.log(value / self.limit) / self.share))

    def recovery_weight(self, line: float, value: float) -> float:
        """The evidence of a recovery one value adds (or takes away): the mirror of
        `weight`, under `line` instead of over the limit, in the same units."""
        if self.share <= 0 or value <= 0 or line <= 0:
            return 1.0 if value <= line else -1.0
        return max(-1.0, min(1.0, math.log(line / value) / self.share))

    def recovery_line(self, regressed: tuple[float, ...]) -> float:
        """The line a recovering run falls under: the lower of the limit and the point
        `RECOVERY_LINE` of the way (in logs) from the median up to the level of the
        `regressed` values: a run just under the limit is still more like a small
        regression than like the old level."""
        if not regressed:
            return self.limit
        level = median(regressed)
        if self.median > 0 and level > 0:
            point = self.median * math.exp(RECOVERY_LINE * math.log(level / self.median))
        else:
            point = self.median + (level - self.median) * RECOVERY_LINE
        return min(self.limit, point)

    def recovery(self, since: tuple[float, ...], recovering: int) -> tuple[float, float, int]:
        """The recovery evidence of a regression's values `since`, whose last
        `recovering` are its recovery excursion: (evidence, line, the values of the
        excursion still in it). The line comes from the values before the excursion."""
        start = len(since) - recovering
        line = self.recovery_line(since[:start])
        total = 0.0
        kept = 0
        for value in since[start:]:
            total = max(0.0, total + self.recovery_weight(line, value))
            kept = kept + 1 if total > 0 else 0
        return total, line, kept

    def evidence(self, values: tuple[float, ...]) -> float:
        """The CUSUM of `values` from 0 against this band."""
        return self.excursion(values)[0]

    def excursion(self, values: tuple[float, ...]) -> tuple[float, int]:
        """The CUSUM of `values` from 0 against this band, and where its excursion
        began (the index after the last value that brought it back to 0)."""
        total = 0.0
        start = 0
        for index, value in enumerate(values):
            total = max(0.0, total + self.weight(value))
            if total <= 0:
                start = index + 1
        return total, start


def band(values: tuple[float, ...], thresholds: Thresholds) -> Band | None:
    """The band of a baseline, or None with fewer than `min_runs` values."""
    if len(values) < thresholds.min_runs:
        return None
    middle = median(values)
    mad = median(abs(v - middle) for v in values)
    scale = _log_scale(values, middle) if thresholds.use_mad else 0.0
    noise = _noise(values, middle, scale) if thresholds.use_mad else 0.0
    floors: list[tuple[float, Bound]] = [
        (thresholds.relative * middle, "relative"),
        (thresholds.absolute, "absolute"),
    ]
    margin, bound = max(
        [(middle * _grown(thresholds.allowance * noise), "mad"), *floors]
        if thresholds.use_mad
        else floors,
        key=lambda part: part[0],
    )  # first of equals: mad, relative
    full = middle + max(margin, middle * _grown(thresholds.mad_k * noise))
    limit = middle + margin
    share = math.log(full / limit) if 0 < limit < full < math.inf else 0.0
    return Band(
        median=middle,
        mad=mad,
        limit=limit,
        bound=bound,
        scale=scale,
        full=full,
        share=share,
    )


def _grown(logs: float) -> float:
    """exp(logs) - 1, at most e^50: a scale from a few wild values never overflows."""
    return math.expm1(min(logs, 50.0))


def _noise(values: tuple[float, ...], middle: float, scale: float) -> float:
    """The scale a band uses. From `SMALL_BASELINE` values on, the robust scale itself.
    Below, a MAD of a few values can come out far too small (6 values of 10% noise have
    given 0.5%), so the larger of it and the mean absolute deviation of the logs (x
    1.2533, its normal consistency factor), times `SMALL_BASELINE` / values."""
    count = len(values)
    if count >= SMALL_BASELINE or middle <= 0:
        return scale
    centre = math.log(middle)
    spread = sum(abs(math.log(v) - centre) for v in values if v > 0) / count
    return max(scale, MEAN_AD_SCALE * spread) * SMALL_BASELINE / count


def _log_scale(values: tuple[float, ...], middle: float) -> float:
    """1.4826 x the median of |ln value - ln median|: 0 when the median is 0 (a zero
    value is infinitely far in logs, which a median shrugs off while they are few)."""
    if middle <= 0:
        return 0.0
    centre = math.log(middle)
    spread = median(abs(math.log(v) - centre) if v > 0 else math.inf for v in values)
    return MAD_SCALE * spread if math.isfinite(spread) else 0.0


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
    runs = len(state.baseline)
    flagged = value > judged.limit
    values = (*state.pending, value)
    evidence, start = judged.excursion(values)
    joined, excursion = values[:start], values[start:]
    if evidence >= thresholds.consecutive - _EPSILON:
        since = excursion[-thresholds.runs :]
        new = SeriesState(
            baseline=_window(state.baseline + joined, thresholds), regressed=True, since=since
        )
        verdict = _verdict(new, value, judged, runs, flagged, fired="regressed", evidence=evidence)
        return new, verdict
    keep = _excursion_limit(thresholds)
    if evidence <= 0:  # back to nothing: the excursion was noise, it joins the baseline
        joined, excursion = values, ()
    elif len(excursion) > keep:  # its oldest values join: no baseline frozen for long
        joined, excursion = joined + excursion[:-keep], excursion[-keep:]
    new = SeriesState(baseline=_window(state.baseline + joined, thresholds), pending=excursion)
    return new, _verdict(new, value, judged, runs, flagged, evidence=evidence)


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
    recovery, line, recovering = judged.recovery(since, state.recovering + 1)
    runs = len(state.baseline)
    if clear >= thresholds.consecutive and recovery >= thresholds.consecutive - _EPSILON:
        # recovered: the in-band tail joins the baseline, the regressed values do not
        new = SeriesState(baseline=_window(state.baseline + since[-clear:], thresholds))
        verdict = _verdict(
            new, value, judged, runs, False, fired="improved", recovery=recovery, line=line
        )
        return new, verdict
    if len(since) >= thresholds.runs:  # a lasting new level: it becomes the baseline
        new = SeriesState(baseline=_window(since, thresholds))
        verdict = _verdict(new, value, judged, runs, flagged, adopted=True)
        return new, verdict
    new = SeriesState(
        baseline=state.baseline,
        regressed=True,
        since=since,
        clear_streak=clear,
        recovering=recovering,
    )
    return new, _verdict(new, value, judged, runs, flagged, recovery=recovery, line=line)


def _verdict(
    new: SeriesState,
    value: float,
    judged: Band | None,
    runs: int,
    flagged: bool,
    *,
    fired: Fired | None = None,
    adopted: bool = False,
    evidence: float | None = None,
    recovery: float | None = None,
    line: float | None = None,
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
        scale=judged.scale,
        evidence=evidence,
        recovery=recovery,
        line=line,
    )


def _skip(state: SeriesState, value: object, why: Skipped, thresholds: Thresholds) -> Verdict:
    judged = band(state.baseline, thresholds)
    shown = clean_number(value)
    recovered = (
        judged.recovery(state.since, state.recovering) if judged and state.regressed else None
    )
    return Verdict(
        value=shown,
        median=judged.median if judged else None,
        mad=judged.mad if judged else None,
        limit=judged.limit if judged else None,
        bound=judged.bound if judged else None,
        scale=judged.scale if judged else None,
        evidence=judged.evidence(state.pending) if judged and not state.regressed else None,
        recovery=recovered[0] if recovered else None,
        line=recovered[1] if recovered else None,
        runs=len(state.baseline),
        regressed=state.regressed,
        skipped=why,
        recent=_recent(state),
    )


def _recent(state: SeriesState) -> tuple[float, ...]:
    return (state.baseline + state.since + state.pending)[-RECENT:]


def _excursion_limit(thresholds: Thresholds) -> int:
    """The values an excursion keeps apart: older ones join the baseline, so a baseline
    never stays frozen at a low point while noise hovers above its limit."""
    return max(thresholds.consecutive, thresholds.runs // 2)


_EPSILON = 1e-9  # evidence of exactly `consecutive` full runs fires despite rounding


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
