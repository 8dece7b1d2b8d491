"""The render worker: a real child process that answers within its time and memory
budget, is killed when it does not answer, and is replaced for the next template."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from watcher.render import SAMPLE_EVENT, context
from watcher.render_worker import MEMORY_BYTES, Worker

FAN_OUT = (  # 2^40 macro calls: no loop for lint to see, endless when rendered
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
)
DOUBLING = (  # 2^60 characters: memory, one concatenation at a time
    "{% set ns = namespace(s='a') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}"
)


@pytest.fixture
def worker() -> Iterator[Worker]:
    child = Worker(seconds=0.5)
    yield child
    child.close()


def variables() -> dict[str, object]:
    return context(SAMPLE_EVENT, "failures", "failure")


def test_a_template_renders_in_the_child(worker: Worker) -> None:
    assert worker.render("{{ job.name }} {{ rule.name }}", variables()) == (
        "ok",
        "Homepage failures",
    )


def test_time_over_budget_is_answered_and_the_child_goes_on(worker: Worker) -> None:
    """The child's alarm interrupts a render that runs past its time."""
    outcome, why = worker.render(FAN_OUT, variables())
    assert (outcome, why) == ("over", "took longer than the time budget")
    assert worker.render("{{ job.sref }}", variables()) == ("ok", "jobs/12345")


def test_memory_over_budget_is_answered_and_the_child_goes_on(worker: Worker) -> None:
    outcome, why = worker.render(DOUBLING, variables())
    assert (outcome, why) == ("over", f"needed more than {MEMORY_BYTES // 2**20} MB")
    assert worker.render("{{ job.sref }}", variables()) == ("ok", "jobs/12345")


def test_a_child_that_does_not_answer_is_killed_and_replaced(worker: Worker) -> None:
    """A child stopped mid-render (as one stuck in C code would be) is past its deadline:
    the parent kills it, answers "over", and the next template gets a new child."""
    assert worker.render("{{ job.sref }}", variables())[0] == "ok"
    stuck = worker._child
    assert stuck is not None
    os.kill(stuck.pid, signal.SIGSTOP)
    outcome, why = worker.render("{{ job.sref }}", variables())
    assert outcome == "over"
    assert why.startswith("no answer within 0.5 s")
    assert stuck.poll() == -signal.SIGKILL
    assert worker.render("{{ job.sref }}", variables()) == ("ok", "jobs/12345")
    assert worker._child is not None
    assert worker._child.pid != stuck.pid


def test_a_child_that_died_is_replaced(worker: Worker) -> None:
    assert worker.render("{{ job.sref }}", variables())[0] == "ok"
    assert worker._child is not None
    worker._child.kill()
    worker._child.wait()
    assert worker.render("{{ job.sref }}", variables()) == ("ok", "jobs/12345")


def test_check_parses_lints_and_renders_the_sample(worker: Worker) -> None:
    sample = variables()
    assert worker.check("{{ job.name }}", sample) == ("ok", "Homepage")
    assert worker.check("{{ job.name ", sample)[0] == "error"
    outcome, why = worker.check("{% for a in range(1000000) %}{% endfor %}", sample)
    assert (outcome, why.split(":")[0]) == ("error", "Unbounded")
    assert worker.check(FAN_OUT, sample) == ("over", "took longer than the time budget")


def test_an_idle_child_is_stopped_and_the_next_template_starts_another() -> None:
    """A child left unasked for the idle time exits (an idle daemon keeps none); the next
    template is answered by a new one."""
    worker = Worker(idle=0.2)
    try:
        assert worker.render("{{ job.sref }}", variables()) == ("ok", "jobs/12345")
        first = worker._child
        assert first is not None
        first.wait(30)  # the child exits on its own, without a request
        assert worker._child is None
        assert worker.render("{{ job.sref }}", variables()) == ("ok", "jobs/12345")
    finally:
        worker.close()


def test_a_child_in_use_is_kept() -> None:
    """Each request starts the idle time over: a child asked more often than that stays."""
    worker = Worker(idle=0.5)
    try:
        assert worker.render("{{ job.sref }}", variables())[0] == "ok"
        first = worker._child
        for _ in range(8):
            time.sleep(0.1)
            assert worker.render("{{ job.sref }}", variables())[0] == "ok"
        assert worker._child is first
    finally:
        worker.close()
