"""Test runs with realistic noise, for the performance-aware events.

Each template has stable pages (title and URL) and browsers, derived from its id
unless set with ``PerfModel.set_pages``. Each (template, page, browser) has a level
for every metric; a run's value is log-normal around that level (the level is its
median, ``noise`` its coefficient of variation), drawn from a seed of (job id, page,
browser), so the same job always answers the same runs.

``shift`` and ``recover`` change a template's levels for jobs created from then on:
the world stores a ``Snapshot`` of the knobs in force when each job is created, and
a job's runs depend only on its snapshot, so old jobs never change.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from watcher.simulator.world import SimJob

TIME_METRICS = (
    "dataStartDuration",
    "renderStart",
    "domLoad",
    "onLoad",
    "visuallyComplete",
    "speedIndex",
    "downloadDuration",
)
SIZE_METRICS = ("pageSize", "objectCount")
METRICS = TIME_METRICS + SIZE_METRICS
NULLABLE = ("visuallyComplete", "speedIndex")
BROWSERS = ("Chrome", "Firefox", "Edge", "Safari")
ERROR_CODES = (500, 503, 404)
RUN_SPACING = timedelta(seconds=20)  # a job's runs are ranAt this far apart

_HOSTS = ("https://shop.example.com", "https://www.example.com", "https://m.example.com")
_PAGES = (
    ("Home", "/"),
    ("Search results", "/search?q=shoes"),
    ("Product", "/product/1234"),
    ("Basket", "/basket"),
    ("Checkout", "/checkout"),
    ("Sign in", "/account/login"),
    ("Order confirmation", "/checkout/done"),
    ("Store finder", "/stores"),
)


def stable_seed(*parts: object) -> int:
    """A seed from ``parts`` that is the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class Page:
    title: str
    url: str

    def matches(self, target: str | None) -> bool:
        """``target`` names this page by title or URL; None names every page."""
        return target is None or target in (self.title, self.url)


@dataclass(frozen=True)
class Snapshot:
    """The knobs in force for a template when a job was created."""

    noise: float = 0.05
    size_noise: float = 0.01
    null_rate: float = 0.1
    error_rate: float = 0.02
    # (page title or URL, or None for every page; metric; factor)
    shifts: tuple[tuple[str | None, str, float], ...] = ()

    def factor(self, page: Page, metric: str) -> float:
        """The product of the shifts that apply to ``metric`` on ``page``."""
        result = 1.0
        for target, name, factor in self.shifts:
            if name == metric and page.matches(target):
                result *= factor
        return result


def _sigma(cv: float) -> float:
    """The log-normal sigma whose coefficient of variation is ``cv``."""
    return math.sqrt(math.log1p(cv * cv))


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric: unknown {metric!r}; known: {', '.join(METRICS)}")
    return metric


def check_rate(name: str, value: float, *, top: float = 1.0) -> float:
    if not 0.0 <= value <= top:
        raise ValueError(f"{name}: must be between 0 and {top}: {value!r}")
    return float(value)


class PerfModel:
    """Pages, browsers, levels and the noise and shift knobs of every template.

    ``noise`` is the time metrics' coefficient of variation (0.05 is 5%),
    ``size_noise`` that of pageSize and objectCount, ``null_rate`` how often
    visuallyComplete and speedIndex are null, ``error_rate`` how often a run's
    resultCode is an error. ``set_noise`` overrides ``noise`` for one template.
    """

    def __init__(
        self,
        *,
        noise: float = 0.05,
        size_noise: float = 0.01,
        null_rate: float = 0.1,
        error_rate: float = 0.02,
    ) -> None:
        self.noise = noise
        self.size_noise = size_noise
        self.null_rate = null_rate
        self.error_rate = error_rate
        self._noise: dict[str, float] = {}
        self._shifts: dict[str, dict[tuple[str | None, str], float]] = {}
        self._pages: dict[str, tuple[Page, ...]] = {}
        self._browsers: dict[str, tuple[str, ...]] = {}

    # -- pages and levels ---------------------------------------------------------

    def pages(self, template: str) -> tuple[Page, ...]:
        """The template's pages: set ones, else 2 to 5 drawn from its id."""
        pages = self._pages.get(template)
        if pages is None:
            rng = random.Random(stable_seed("pages", template))
            host = rng.choice(_HOSTS)
            chosen = rng.sample(_PAGES, rng.randint(2, 5))
            pages = tuple(Page(title, host + path) for title, path in chosen)
            self._pages[template] = pages
        return pages

    def browsers(self, template: str) -> tuple[str, ...]:
        """The template's browsers: set ones, else 1 to 3 drawn from its id."""
        browsers = self._browsers.get(template)
        if browsers is None:
            rng = random.Random(stable_seed("browsers", template))
            browsers = tuple(sorted(rng.sample(BROWSERS, rng.randint(1, 3))))
            self._browsers[template] = browsers
        return browsers

    def set_pages(
        self,
        template: str,
        pages: Iterable[Page | tuple[str, str]],
        browsers: Sequence[str] | None = None,
    ) -> None:
        """Give a template these pages (title, URL) and, optionally, browsers."""
        chosen = tuple(p if isinstance(p, Page) else Page(*p) for p in pages)
        if not chosen:
            raise ValueError("pages: at least one is needed")
        self._pages[template] = chosen
        if browsers is not None:
            if not browsers:
                raise ValueError("browsers: at least one is needed")
            self._browsers[template] = tuple(browsers)

    def levels(self, template: str, page: Page, browser: str) -> dict[str, float]:
        """The unshifted median of every metric for one (template, page, browser)."""
        rng = random.Random(stable_seed("levels", template, page.url, browser))
        data_start = rng.uniform(0.05, 0.4)
        render_start = data_start + rng.uniform(0.2, 1.2)
        dom_load = render_start + rng.uniform(0.2, 1.5)
        on_load = dom_load + rng.uniform(0.1, 2.0)
        visually_complete = on_load + rng.uniform(0.1, 1.0)
        speed_index = render_start + (visually_complete - render_start) * rng.uniform(0.3, 0.7)
        return {
            "dataStartDuration": data_start,
            "renderStart": render_start,
            "domLoad": dom_load,
            "onLoad": on_load,
            "visuallyComplete": visually_complete,
            "speedIndex": speed_index,
            "downloadDuration": rng.uniform(0.05, 0.8),
            "pageSize": float(rng.randrange(50_000, 4_000_000)),
            "objectCount": float(rng.randrange(5, 150)),
        }

    # -- knobs ----------------------------------------------------------------------

    def set_noise(self, template: str, noise: float | None) -> None:
        """The time metrics' noise for one template's new jobs (None: the default)."""
        if noise is None:
            self._noise.pop(template, None)
        else:
            self._noise[template] = check_rate("noise", noise, top=10.0)

    def shift(self, template: str, metric: str, factor: float, page: str | None = None) -> None:
        """Multiply ``metric`` by ``factor`` in the template's jobs created from now on,
        on every page or the one titled or at ``page``. A shift replaces an earlier one of
        the same (metric, page); template-wide and page shifts multiply."""
        check_metric(metric)
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"factor: must be a positive number: {factor!r}")
        self._shifts.setdefault(template, {})[(page, metric)] = float(factor)

    def recover(self, template: str, metric: str | None = None, page: str | None = None) -> None:
        """Undo shifts for new jobs: every shift of the template, or those of ``metric``
        (every page's, unless ``page`` names one)."""
        if metric is not None:
            check_metric(metric)
        shifts = self._shifts.get(template, {})
        for target, name in list(shifts):
            if (metric is None or name == metric) and (page is None or target == page):
                del shifts[(target, name)]
        if not shifts:
            self._shifts.pop(template, None)

    def shifts(self) -> list[dict[str, object]]:
        """Every shift in force, for the admin API."""
        return [
            {"template": template, "metric": metric, "page": page, "factor": factor}
            for template, shifts in sorted(self._shifts.items())
            for (page, metric), factor in shifts.items()
        ]

    def snapshot(self, template: str) -> Snapshot:
        """What a job of ``template`` created now will keep."""
        shifts = self._shifts.get(template, {})
        return Snapshot(
            noise=self._noise.get(template, self.noise),
            size_noise=self.size_noise,
            null_rate=self.null_rate,
            error_rate=self.error_rate,
            shifts=tuple((page, metric, f) for (page, metric), f in shifts.items()),
        )

    def settings(self) -> dict[str, object]:
        return {
            "noise": self.noise,
            "size_noise": self.size_noise,
            "null_rate": self.null_rate,
            "error_rate": self.error_rate,
            "template_noise": dict(sorted(self._noise.items())),
            "shifts": self.shifts(),
        }

    # -- runs -------------------------------------------------------------------------

    def run_count(self, job: SimJob) -> int:
        """How many runs a job has: none pending, all completed, some otherwise."""
        total = len(self.pages(job.template)) * len(self.browsers(job.template))
        if job.status == "pending":
            return 0
        if job.status == "completed":
            return total
        if job.status == "running":
            return min(total, max(1, job.page_count))
        # Failed, cancelled or expired part way: at least one run, so alerts can list it.
        return 1 + stable_seed("ended", job.id) % total

    def runs(self, job: SimJob) -> list[dict[str, object]]:
        """The job's test runs, the same every time it is asked."""
        snap = job.perf if job.perf is not None else self.snapshot(job.template)
        pairs = [(p, b) for p in self.pages(job.template) for b in self.browsers(job.template)]
        count = self.run_count(job)
        runs = []
        for k, (page, browser) in enumerate(pairs[:count]):
            failed_here = job.status == "failed" and k == count - 1
            runs.append(self._run(job, k, page, browser, snap, failed=failed_here))
        return runs

    def _run(
        self, job: SimJob, k: int, page: Page, browser: str, snap: Snapshot, *, failed: bool
    ) -> dict[str, object]:
        rng = random.Random(stable_seed("run", job.id, page.url, browser))
        levels = self.levels(job.template, page, browser)
        values: dict[str, object] = {}
        for metric in METRICS:  # a fixed order of draws: the seed fixes every value
            cv = snap.size_noise if metric in SIZE_METRICS else snap.noise
            z = rng.gauss(0.0, 1.0)
            value = levels[metric] * snap.factor(page, metric) * math.exp(_sigma(cv) * z)
            values[metric] = round(value) if metric in SIZE_METRICS else round(value, 3)
        if rng.random() < snap.null_rate:
            for metric in NULLABLE:
                values[metric] = None
        errored = rng.random() < snap.error_rate
        code = rng.choice(ERROR_CODES) if failed or errored else 200
        run_id = job.id * 1000 + k
        return {
            "sref": f"testRuns/{run_id}",
            "pageTitle": page.title,
            "url": page.url,
            "browser": browser,
            **values,
            "resultCode": code,
            "severity": "high" if code >= 400 else "low",
            "ranAt": (job.started_at + RUN_SPACING * k).isoformat(timespec="seconds"),
            "objectsUri": f"objects?testRun=testRuns%2F{run_id}",
            "jobUri": job.sref,
        }
