"""Where the CLI writes: people read stderr (rich), scripts read stdout (one JSON per line).

JSON goes to the real stdout only; while a command runs with --json, anything a library
prints (torch.hub announces downloads on stdout) is sent to stderr instead (``cli.main``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from engine.folder import PathKeys

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


def note(text: str) -> None:
    """One plain line for people on stderr (never wrapped, never read as markup)."""
    print(text, file=sys.stderr, flush=True)


def print_search(query: str, answer: dict[str, Any], keys: PathKeys, as_json: bool) -> None:
    """A search's answer (the API's shape: hits with id, paths, score, scores by role and
    near_duplicate), as one JSON line or a table."""
    hits = [
        {
            "id": h["id"],
            "path": str(keys.path(h["paths"][0])) if h.get("paths") else "",
            "score": h["score"],
            "scores": h["scores"],
            "near_duplicate": h["near_duplicate"],
            "matched_query": h.get("matched_query"),
            "verified": (h.get("verified") or {}).get("sentence"),
            "verified_by": (h.get("verified") or {}).get("method"),
        }
        for h in answer["hits"]
    ]
    timings = {k: round(v, 2) for k, v in answer.get("timings", {}).items()}
    if as_json:
        emit({"query": query, "hits": hits, "timings": timings, "weights": answer["weights"]})
        return
    roles = [r for r in ("clip", "cnn", "hsv") if any(r in h["scores"] for h in hits)]
    table = Table(title=f"{query}  ({', '.join(f'{k}={v}' for k, v in timings.items())})")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    for role in roles:
        table.add_column(role, justify="right")
    table.add_column("path")
    for i, h in enumerate(hits, 1):
        per_model = [f"{h['scores'].get(r, 0):.3f}" for r in roles]
        mark = "  near duplicate" if h["near_duplicate"] else ""
        if h["verified"]:
            proof = "LIKELY COPY" if h["verified_by"] == "thumbnail" else "VERIFIED"
            mark = f"  {proof}: {h['verified']}"
        if h["matched_query"] is not None:
            mark += f"  (query image {h['matched_query'] + 1})"
        table.add_row(str(i), f"{h['score']:.3f}", *per_model, escape(f"{h['path']}{mark}"))
    out.print(table)


def print_status(status: dict[str, Any]) -> None:
    out.print(f"[bold]{status['points']}[/] images, backend [bold]{status['backend']}[/]")
    out.print(f"data: {status['data_dir']}   library: {status['library_dir']}", markup=False)
    for m in status["roles"]:
        note_ = f"  FALLBACK: {m['reason']}" if m.get("fallback") else ""
        name = m["name"] or "off"
        out.print(f"  {m['role']:<5} {name:<14} weights={m['weights'] or '-'}{note_}", markup=False)
    defaults = status["defaults"]
    weights = ", ".join(f"{r}={w:g}" for r, w in defaults["weights"].items())
    threshold = defaults["near_duplicate_threshold"]
    near = f"{threshold:.3f}" if threshold is not None else "none (uncalibrated)"
    out.print(f"defaults: {weights}; near duplicate at {near} ({defaults['source']})", markup=False)
    mode = status["search_mode"]
    out.print(f"search: served by {mode['mode']} ({mode['reason']})", markup=False)
    if status.get("fused_index", "none") != "none":
        out.print(f"fused index: {status['fused_index']}", markup=False)
    if status["mirror"] is not None:
        out.print(f"mirror: {status['mirror']['points']} points, lag {status['mirror_lag']}")
