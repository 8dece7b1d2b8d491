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
    """A cycle's worth of allocations (more than GROWTH) sets off one trim; with no
    growth since, the next release does nothing."""
    blocks = [bytes(1000) for _ in range(4 * heap.GROWTH // 1000)]
    assert trims.release()
    del blocks
    assert not trims.release()


def test_resident_size_is_read() -> None:
    assert heap.resident() > 0
