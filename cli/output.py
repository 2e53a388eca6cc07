"""Where the CLI writes: people read stderr (rich), scripts read stdout (one JSON per line).

JSON goes to the real stdout only; while a command runs with --json, anything a library
prints (torch.hub announces downloads on stdout) is sent to stderr instead (``cli.main``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

err = Console(stderr=True)
out = Console()
_json_out: list[TextIO] = [sys.stdout]


def set_json_stream(stream: TextIO) -> None:
    _json_out[0] = stream


def emit(obj: object) -> None:
    stream = _json_out[0]
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A ``Progress`` callback (stage, done, total) drawing one bar per stage on stderr."""
    columns = (
        TextColumn("{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, rate="")
            task = bar.tasks[tasks[stage]]
            speed = task.speed
            rate = f"{speed:6.1f} files/s" if speed else ""
            bar.update(tasks[stage], completed=done, total=total, rate=rate)

        yield update
