"""Background jobs: one at a time, progress visible, failures explained."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from api.job_runner import JobRunner
from engine.errors import BadInput, Conflict, NotFound


def test_a_job_reports_progress_and_result() -> None:
    runner = JobRunner()
    release = threading.Event()
    seen = threading.Event()

    def work(progress: Any) -> dict[str, Any]:
        progress("embedding", 2, 5)
        seen.set()
        release.wait(5)
        return {"embedded": 5}

    job = runner.start("reindex", work)
    assert job.state == "queued"  # the state when it was created, whatever the thread does
    seen.wait(5)
    running = runner.get(job.id)
    assert (running.state, running.stage, running.done, running.total) == (
        "running",
        "embedding",
        2,
        5,
    )
    with pytest.raises(Conflict, match=job.id):
        runner.start("reconcile", lambda progress: {})
    release.set()
    runner.join(5)
    done = runner.get(job.id)
    assert done.state == "done" and done.result == {"embedded": 5} and done.finished_at
    assert runner.latest() == done and not runner.busy()


def test_failures_keep_the_sentence_not_the_traceback() -> None:
    runner = JobRunner()

    def bad_input(progress: Any) -> dict[str, Any]:
        raise BadInput("The folder is gone.")

    job = runner.start("reindex", bad_input)
    runner.join(5)
    assert runner.get(job.id).detail == "The folder is gone."

    def bug(progress: Any) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    job = runner.start("reindex", bug)
    runner.join(5)
    failed = runner.get(job.id)
    assert failed.state == "failed" and "secret" not in (failed.detail or "")


def test_unknown_job() -> None:
    with pytest.raises(NotFound):
        JobRunner().get("nope")
