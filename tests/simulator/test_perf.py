"""The simulator's test runs: per-page levels, log-normal noise, nulls, result codes,
shifts and recoveries that only new jobs see."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

import pytest

from watcher.simulator import World
from watcher.simulator.perf import METRICS, NULLABLE, PerfModel

T = "jobTemplates/6789"
T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def fresh_world() -> World:
    return World(clock=lambda: T0)


def series(world: World, runs: int, metric: str = "onLoad", **job: Any) -> list[float]:
    """``metric`` of the first (page, browser) of ``runs`` new completed jobs of T."""
    values = []
    for _ in range(runs):
        first = world.perf.runs(world.add_job(template=T, status="completed", **job))[0]
        values.append(float(first[metric]))
    return values


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


def test_runs_are_the_same_for_the_same_job_in_any_world() -> None:
    """Runs depend on the job id and template only: asking twice, or asking another
    world that made the same job, answers the same runs."""
    one, two = fresh_world(), fresh_world()
    job_one = one.add_job(template=T, status="completed")
    job_two = two.add_job(template=T, status="completed")
    assert one.perf.runs(job_one) == one.perf.runs(job_one) == two.perf.runs(job_two)


def test_template_has_stable_pages_and_browsers() -> None:
    """Every job of a template covers the same pages and browsers, in the same order."""
    world = fresh_world()
    runs = [world.perf.runs(world.add_job(template=T, status="completed")) for _ in range(5)]
    keys = [[(r["pageTitle"], r["url"], r["browser"]) for r in job] for job in runs]
    assert all(k == keys[0] for k in keys)
    pages, browsers = world.perf.pages(T), world.perf.browsers(T)
    assert len(keys[0]) == len(pages) * len(browsers)
    assert 2 <= len(pages) <= 5
    assert 1 <= len(browsers) <= 3
    assert world.perf.pages("jobTemplates/1") != pages


def test_runs_have_every_documented_field() -> None:
    """A run carries the documented fields; times are seconds, sizes whole numbers."""
    world = fresh_world()
    job = world.add_job(template=T, status="completed")
    run = world.perf.runs(job)[0]
    assert set(run) == {
        "sref", "pageTitle", "url", "browser", "dataStartDuration", "renderStart", "domLoad",
        "onLoad", "visuallyComplete", "downloadDuration", "pageSize", "speedIndex",
        "resultCode", "objectCount", "severity", "ranAt", "objectsUri", "jobUri",
    }  # fmt: skip
    assert run["jobUri"] == job.sref
    assert run["ranAt"] == "2024-03-01T12:00:00+00:00"
    assert isinstance(run["pageSize"], int)
    assert isinstance(run["objectCount"], int)
    assert 0 < float(run["onLoad"]) < 30


@pytest.mark.parametrize("noise", [0.05, 0.10, 0.20])
def test_noise_is_log_normal_around_the_level(noise: float) -> None:
    """Over 500 jobs, a series' median is its level and its coefficient of variation
    is the noise asked for (loosely: the draws are seeded, so this never flakes)."""
    world = fresh_world()
    world.perf.noise = noise
    values = series(world, 500)
    page, browser = world.perf.pages(T)[0], world.perf.browsers(T)[0]
    level = world.perf.levels(T, page, browser)["onLoad"]
    assert statistics.median(values) == pytest.approx(level, rel=noise / 3)
    assert cv(values) == pytest.approx(noise, rel=0.15)
    assert min(values) > 0


def test_size_metrics_have_their_own_noise() -> None:
    """pageSize follows size_noise (1% by default), not the time metrics' noise."""
    world = fresh_world()
    world.perf.noise = 0.3
    assert cv(series(world, 500, "pageSize")) == pytest.approx(0.01, rel=0.15)


def test_template_noise_overrides_the_default() -> None:
    """set_noise gives one template its own noise."""
    world = fresh_world()
    world.perf.set_noise(T, 0.2)
    assert cv(series(world, 500)) == pytest.approx(0.2, rel=0.15)
    world.perf.set_noise(T, None)
    assert cv(series(world, 500)) == pytest.approx(0.05, rel=0.15)


def test_visual_metrics_are_null_sometimes_and_only_they() -> None:
    """visuallyComplete and speedIndex are null together in about null_rate of runs;
    other metrics never are. Result codes are mostly 200."""
    world = fresh_world()
    runs = [r for _ in range(300) for r in world.perf.runs(world.add_job(status="completed"))]
    nulls = [r for r in runs if r["speedIndex"] is None]
    assert 0.05 < len(nulls) / len(runs) < 0.15
    assert all(r["visuallyComplete"] is None for r in nulls)
    assert all(r[m] is not None for r in runs for m in METRICS if m not in NULLABLE)
    ok = sum(r["resultCode"] == 200 for r in runs) / len(runs)
    assert 0.95 < ok < 1.0
    world.perf.null_rate = 0.0
    assert all(r["speedIndex"] is not None for r in world.perf.runs(world.add_job()))


def test_runs_follow_the_job_status() -> None:
    """Pending: none; running: one per result page; completed: all; failed: some, the
    last one an error; cancelled and expired: at least one."""
    world = fresh_world()
    perf = world.perf
    total = len(perf.pages(T)) * len(perf.browsers(T))
    job = world.add_job(template=T)
    assert perf.runs(job) == []
    world.set_status(job, "running")
    assert len(perf.runs(job)) == 1
    world.set_status(job, "completed")
    assert len(perf.runs(job)) == total
    for status in ("failed", "cancelled", "expired"):
        ended = world.add_job(template=T, status=status)
        assert 1 <= len(perf.runs(ended)) <= total
    failed = world.add_job(template=T, status="failed")
    assert perf.runs(failed)[-1]["resultCode"] >= 400


def test_shift_applies_only_to_jobs_created_after_it() -> None:
    """A shift multiplies the metric on the named page in new jobs, exactly (the noise
    draw of a job is the same with or without it); older jobs keep their runs."""
    world, control = fresh_world(), fresh_world()
    old = world.add_job(template=T, status="completed")
    before = world.perf.runs(old)
    page = world.perf.pages(T)[0]
    world.perf.shift(T, "onLoad", 1.5, page=page.title)
    new = world.add_job(template=T, status="completed")
    control.add_job(template=T, status="completed")
    same = control.add_job(template=T, status="completed")
    assert world.perf.runs(old) == before
    for shifted, plain in zip(world.perf.runs(new), control.perf.runs(same), strict=True):
        for metric in METRICS:
            factor = 1.5 if (metric, shifted["pageTitle"]) == ("onLoad", page.title) else 1
            if plain[metric] is not None:
                assert shifted[metric] == pytest.approx(plain[metric] * factor, abs=0.002)


def test_template_wide_and_page_shifts_multiply() -> None:
    """A template-wide shift applies to every page and combines with a page's own."""
    world = fresh_world()
    page = world.perf.pages(T)[0]
    world.perf.shift(T, "domLoad", 2.0)
    world.perf.shift(T, "domLoad", 1.5, page=page.url)
    snap = world.add_job(template=T).perf
    assert snap is not None
    assert snap.factor(page, "domLoad") == 3.0
    assert snap.factor(world.perf.pages(T)[1], "domLoad") == 2.0
    assert snap.factor(page, "onLoad") == 1.0


def test_recover_brings_new_jobs_back_to_the_level() -> None:
    """After recover, new jobs are as if there had been no shift; shifted ones stay."""
    world, control = fresh_world(), fresh_world()
    world.perf.shift(T, "onLoad", 1.4)
    world.perf.shift(T, "pageSize", 1.2)
    shifted = world.add_job(template=T, status="completed")
    kept = world.perf.runs(shifted)
    world.perf.recover(T, "onLoad")
    assert [s["metric"] for s in world.perf.shifts()] == ["pageSize"]
    world.perf.recover(T)
    assert world.perf.shifts() == []
    recovered = world.add_job(template=T, status="completed")
    control.add_job(template=T, status="completed")
    assert world.perf.runs(recovered) == control.perf.runs(
        control.add_job(template=T, status="completed")
    )
    assert world.perf.runs(shifted) == kept


def test_bad_knobs_are_refused() -> None:
    """Unknown metrics and non-positive factors are ValueErrors."""
    perf = PerfModel()
    with pytest.raises(ValueError, match="metric"):
        perf.shift(T, "loadTime", 1.2)
    with pytest.raises(ValueError, match="factor"):
        perf.shift(T, "onLoad", 0)
    with pytest.raises(ValueError, match="pages"):
        perf.set_pages(T, [])


def test_set_pages_fixes_titles_urls_and_browsers() -> None:
    """set_pages gives a template the pages and browsers a test wants."""
    world = fresh_world()
    world.perf.set_pages(T, [("Checkout", "https://shop.example.com/checkout")], ["Chrome"])
    runs = world.perf.runs(world.add_job(template=T, status="completed"))
    assert [(r["pageTitle"], r["url"], r["browser"]) for r in runs] == [
        ("Checkout", "https://shop.example.com/checkout", "Chrome")
    ]
