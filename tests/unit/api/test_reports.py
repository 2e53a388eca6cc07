"""ReportQueue: one report at a time, and a report whose client left stops."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from api.reports import ReportQueue
from engine.errors import Cancelled


def _staying_client() -> Any:
    async def receive() -> dict[str, str]:
        await anyio.sleep_forever()
        return {"type": "http.disconnect"}

    return receive


def _leaving_client(after_s: float) -> Any:
    async def receive() -> dict[str, str]:
        await anyio.sleep(after_s)
        return {"type": "http.disconnect"}

    return receive


def test_reports_run_one_at_a_time() -> None:
    queue = ReportQueue()
    running, most = [0], [0]
    lock = threading.Lock()

    def work(cancelled: Any) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return 1

    async def main() -> list[int]:
        results: list[int] = []

        async def one() -> None:
            results.append(await queue.run(work, _staying_client()))

        async with anyio.create_task_group() as tasks:
            for _ in range(4):
                tasks.start_soon(one)
        return results

    assert anyio.run(main) == [1, 1, 1, 1]
    assert most[0] == 1


def test_a_report_whose_client_left_stops_at_the_next_block() -> None:
    queue = ReportQueue()
    blocks = [0]

    def work(cancelled: Any) -> None:
        while blocks[0] < 10_000:  # far longer than the test waits
            if cancelled():
                raise Cancelled("stopped")
            blocks[0] += 1
            time.sleep(0.01)

    async def main() -> None:
        await queue.run(work, _leaving_client(0.1))

    with pytest.raises(Cancelled):
        anyio.run(main)
    assert 0 < blocks[0] < 1_000 and queue.running == 0


def test_a_client_that_leaves_while_waiting_never_runs() -> None:
    queue = ReportQueue()
    ran: list[str] = []

    def slow(cancelled: Any) -> None:
        time.sleep(0.3)
        ran.append("first")

    def second(cancelled: Any) -> None:
        ran.append("second")

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queue.run, slow, _staying_client())
            await anyio.sleep(0.05)
            with pytest.raises(Cancelled):
                await queue.run(second, _leaving_client(0.05))

    anyio.run(main)
    assert ran == ["first"]
