"""Dynamic batching: concurrent callers share batches, each gets its own result."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from engine.batching import Batcher


def run_concurrently(
    batcher: Batcher[int, int], items: list[int]
) -> dict[int, int | BaseException]:
    results: dict[int, int | BaseException] = {}
    start = threading.Barrier(len(items))

    def call(item: int) -> None:
        start.wait()
        try:
            results[item] = batcher.submit(item)
        except BaseException as exc:
            results[item] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def recording(fn: Callable[[list[int]], list[int]]) -> tuple[list[list[int]], Callable]:
    batches: list[list[int]] = []

    def wrapped(items: list[int]) -> list[int]:
        batches.append(list(items))
        return fn(items)

    return batches, wrapped


def test_concurrent_callers_share_a_batch_and_get_their_own_result() -> None:
    batches, fn = recording(lambda items: [10 * i for i in items])
    batcher = Batcher(fn, max_batch=8, max_wait_s=0.2)
    results = run_concurrently(batcher, list(range(6)))
    assert results == {i: 10 * i for i in range(6)}
    assert len(batches) < 6  # batched (all six arrive within the 200 ms window)
    assert sorted(i for b in batches for i in b) == list(range(6))
    batcher.close()


def test_batches_never_exceed_max_batch() -> None:
    batches, fn = recording(lambda items: items)
    batcher = Batcher(fn, max_batch=3, max_wait_s=0.2)
    assert run_concurrently(batcher, list(range(10))) == {i: i for i in range(10)}
    assert max(len(b) for b in batches) <= 3
    batcher.close()


def test_a_lone_call_waits_at_most_about_max_wait() -> None:
    batcher = Batcher(lambda items: items, max_batch=8, max_wait_s=0.05)
    batcher.submit(0)  # starts the worker
    t = time.perf_counter()
    assert batcher.submit(1) == 1
    assert time.perf_counter() - t < 1.0  # 50 ms plus scheduling on busy test machines
    batcher.close()


def test_items_arriving_during_a_batch_form_the_next_one() -> None:
    release = threading.Event()
    batches, fn = recording(lambda items: (release.wait(5), items)[1])
    batcher = Batcher(fn, max_batch=8, max_wait_s=0.0)
    first = threading.Thread(target=batcher.submit, args=(0,))
    first.start()
    while not batches:  # the first batch is being computed
        time.sleep(0.001)
    threading.Timer(0.2, release.set).start()
    assert run_concurrently(batcher, [1, 2, 3]) == {1: 1, 2: 2, 3: 3}
    first.join(5)
    assert len(batches) == 2 and batches[0] == [0] and sorted(batches[1]) == [1, 2, 3]
    batcher.close()


def test_an_error_reaches_every_caller_of_its_batch_only() -> None:
    def fn(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky batch")
        return items

    batcher = Batcher(fn, max_batch=8, max_wait_s=0.2)
    results = run_concurrently(batcher, [12, 13])
    assert all(isinstance(r, ValueError) for r in results.values())
    assert batcher.submit(7) == 7  # the worker survived
    batcher.close()


def test_a_wrong_number_of_results_is_an_error() -> None:
    batcher = Batcher(lambda items: [], max_batch=2, max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        batcher.submit(1)
    batcher.close()


def test_closed_batcher_refuses_new_items() -> None:
    batcher = Batcher(lambda items: items)
    assert batcher.submit(3) == 3
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(4)
    Batcher(lambda items: items).close()  # never started: nothing to join
    with pytest.raises(ValueError):
        Batcher(lambda items: items, max_batch=0)


def test_a_batch_waits_for_an_announced_item_still_being_prepared() -> None:
    batches, fn = recording(lambda items: items)
    batcher = Batcher(fn, max_batch=8, max_wait_s=0.001, max_gather_s=5.0)
    announced = threading.Event()
    results: dict[str, int] = {}

    def slow_caller() -> None:
        with batcher.coming() as submit:
            announced.set()
            time.sleep(0.1)  # decoding its upload
            results["slow"] = submit(2)

    t = threading.Thread(target=slow_caller)
    t.start()
    announced.wait(5)
    results["fast"] = batcher.submit(1)  # ready at once, but someone is on the way
    t.join(10)
    assert results == {"fast": 1, "slow": 2}
    assert batches == [[1, 2]]
    batcher.close()


def test_an_announced_item_that_fails_to_prepare_stops_the_wait() -> None:
    batches, fn = recording(lambda items: items)
    batcher = Batcher(fn, max_batch=8, max_wait_s=0.001, max_gather_s=30.0)
    announced = threading.Event()

    def failing_caller() -> None:
        with pytest.raises(ValueError), batcher.coming():
            announced.set()
            time.sleep(0.05)
            raise ValueError("undecodable upload")

    t = threading.Thread(target=failing_caller)
    t.start()
    announced.wait(5)
    started = time.monotonic()
    assert batcher.submit(1) == 1
    assert time.monotonic() - started < 10  # not the 30 s gathering limit
    t.join(10)
    assert batches == [[1]]
    batcher.close()


def test_after_a_shared_batch_the_next_one_gathers_companions() -> None:
    # Under steady load the callers of the batch that just ended come back moments later:
    # the next batch waits for them (up to max_gather_s) instead of leaving alone.
    batches, fn = recording(lambda items: items)
    batcher = Batcher(fn, max_batch=8, max_wait_s=0.3, max_gather_s=5.0)
    assert run_concurrently(batcher, [1, 2]) == {1: 1, 2: 2}
    assert [sorted(b) for b in batches] == [[1, 2]]
    batcher.max_wait_s = 0.001  # from now on a lone caller would leave at once

    def late() -> None:
        time.sleep(0.1)
        batcher.submit(4)

    t = threading.Thread(target=late)
    t.start()
    assert batcher.submit(3) == 3
    t.join(10)
    assert batches[1:] == [[3, 4]]
    batcher.close()


def test_after_a_pause_a_lone_caller_does_not_wait_for_the_last_batchs_callers() -> None:
    batches, fn = recording(lambda items: items)
    batcher = Batcher(fn, max_batch=8, max_wait_s=0.3, max_gather_s=0.5)
    assert run_concurrently(batcher, [1, 2]) == {1: 1, 2: 2}
    batcher.max_wait_s = 0.0
    time.sleep(0.6)  # longer than max_gather_s: that burst is over
    started = time.monotonic()
    assert batcher.submit(3) == 3
    assert time.monotonic() - started < 0.45
    assert batches[1:] == [[3]]
    batcher.close()


def test_a_lone_caller_without_load_does_not_wait_for_the_gathering_limit() -> None:
    batcher = Batcher(lambda items: items, max_batch=8, max_wait_s=0.0, max_gather_s=30.0)
    started = time.monotonic()
    assert batcher.submit(1) == 1
    with batcher.coming() as submit:
        assert submit(2) == 2
        with pytest.raises(RuntimeError, match="once"):
            submit(3)
    assert time.monotonic() - started < 10
    batcher.close()
