"""The heap is trimmed after the process grew, and only then."""

from __future__ import annotations

import pytest

from watcher import heap


@pytest.fixture
def trims() -> heap.Heap:
    found = heap.Heap()
    if found._trim is None:
        pytest.skip("no glibc malloc_trim here")
    return found


def test_a_process_that_did_not_grow_is_not_trimmed(trims: heap.Heap) -> None:
    assert not trims.release()


def test_growth_is_trimmed_once(trims: heap.Heap) -> None:
    """Grown by GROWTH since the last trim (as if a cycle had allocated that much: a
    long test process reuses memory it freed, so real allocations need not grow it), a
    release trims; with no growth since, the next does nothing."""
    trims._level = heap.resident() - heap.GROWTH
    assert trims.release()
    assert not trims.release()


def test_resident_size_is_read() -> None:
    assert heap.resident() > 0
