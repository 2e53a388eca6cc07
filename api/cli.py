"""The ``lookalike`` command line. Thin: parse, call the engine, print."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from engine.errors import LookalikeError

err = Console(stderr=True)
out = Console()
# JSON output goes to the real stdout only; while a command runs with --json, anything a
# library prints (torch.hub announces downloads on stdout) is sent to stderr instead.
_json_out = sys.stdout


def emit(obj: object) -> None:
    _json_out.write(json.dumps(obj) + "\n")
    _json_out.flush()


def _settings() -> Any:
    from engine.settings import Settings

    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError: name the setting, no traceback
        raise LookalikeError(f"Invalid settings: {exc}") from None


def _engine() -> Any:
    from engine.core import Engine

    return Engine(_settings())


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
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


def cmd_index(args: argparse.Namespace) -> int:
    engine = _engine()
    try:
        tags = [t.strip() for t in (args.tags or "").split(",") if t.strip()]
        with _progress() as progress:
            report = engine.index(
                Path(args.path) if args.path else None, tags=tags, progress=progress
            )
    finally:
        engine.close()
    if args.json:
        emit(report.as_dict())
    else:
        err.print(
            f"[bold]{report.scanned}[/] files: {report.unchanged} unchanged, "
            f"{report.embedded} embedded, {report.attached} duplicates or moves, "
            f"{report.reembedded} re-embedded, {report.removed_files} removed, "
            f"{len(report.failed)} failed."
        )
        for key, reason in report.failed:
            err.print(f"  [yellow]skipped[/] {key}: {reason}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from engine.search import filter_from, parse_weights

    weights = parse_weights(args.weights)
    flt = filter_from(folders=args.folder, tags_any=args.tag)
    if bool(args.images) == bool(args.text):
        raise LookalikeError("Give either query image files or --text, not both (nor neither).")
    engine = _engine()
    try:
        if args.text:
            result = engine.search_text(args.text, k=args.k, flt=flt)
            _print_result(args.text, result, engine, as_json=args.json)
        for image in args.images:
            path = Path(image)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise LookalikeError(f"Cannot read {image}: {exc.strerror}.") from None
            result = engine.search_image(data, name=image, k=args.k, weights=weights, flt=flt)
            _print_result(image, result, engine, as_json=args.json)
    finally:
        engine.close()
    return 0


def _print_result(query: str, result: Any, engine: Any, *, as_json: bool) -> None:
    hits = [
        {
            "id": h.id,
            "path": str(engine.keys.path(h.path)),
            "score": round(h.score, 6),
            "scores": {m: round(s, 6) for m, s in h.scores.items()},
        }
        for h in result.hits
    ]
    timings = {k: round(v, 2) for k, v in result.timings.items()}
    if as_json:
        emit({"query": query, "hits": hits, "timings": timings})
        return
    table = Table(title=f"{query}  ({', '.join(f'{k}={v}' for k, v in timings.items())})")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    for role in result.models:
        table.add_column(role, justify="right")
    table.add_column("path")
    for i, h in enumerate(hits, 1):
        per_model = [f"{h['scores'].get(r, 0):.3f}" for r in result.models]
        table.add_row(str(i), f"{h['score']:.3f}", *per_model, h["path"])
    out.print(table)


def cmd_duplicates(args: argparse.Namespace) -> int:
    from api.routes.duplicates import report

    engine = _engine()
    try:
        result = report(engine, args.threshold, args.weights)
    finally:
        engine.close()
    if args.json:
        emit(msgspec.to_builtins(result))
        return 0
    out.print(f"[bold]{len(result.groups)}[/] group(s) at threshold {result.threshold:.3f}")
    for i, group in enumerate(result.groups, 1):
        out.print(f"[bold]#{i}[/]  best {group.score:.3f}, {group.size} files")
        for m in group.members:
            for path in m.paths:
                out.print(f"  {m.score:.3f}  {engine.keys.path(path)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    engine = _engine()
    try:
        status = engine.status()
    finally:
        engine.close()
    if args.json:
        emit(status)
        return 0
    out.print(f"[bold]{status['points']}[/] images, backend [bold]{status['backend']}[/]")
    out.print(f"data: {status['data_dir']}   library: {status['library_dir']}")
    for m in status["roles"]:
        note = f"  [yellow]FALLBACK: {m['reason']}[/]" if m.get("fallback") else ""
        name = m["name"] or "off"
        out.print(f"  {m['role']:<5} {name:<14} weights={m['weights'] or '-'}{note}")
    out.print(f"mirror: {status['mirror']['points']} points, lag {status['mirror_lag']}")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    engine = _engine()
    try:
        with _progress() as progress:
            result = engine.reconcile(progress=progress)
    finally:
        engine.close()
    emit(result)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    engine = _engine()
    try:
        applied = engine.open_store()
    finally:
        engine.close()
    err.print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    port = args.port or settings.port
    host = args.host or settings.host
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level="info")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lookalike", description="Self-hosted image search.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("index", help="index a folder (incremental)")
    s.add_argument("path", nargs="?", help="folder (default: LOOKALIKE_LIBRARY_DIR)")
    s.add_argument("--tags", help="comma-separated tags for the images of this folder")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="find images similar to these")
    s.add_argument("images", nargs="*", metavar="IMAGE")
    s.add_argument("--text", help="search by a sentence instead (needs CLIP)")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--weights", help="e.g. clip=1,cnn=1,hsv=1")
    s.add_argument("--folder", action="append", help="restrict to a folder (repeatable)")
    s.add_argument("--tag", action="append", help="restrict to a tag (repeatable, any)")
    s.add_argument("--json", action="store_true", help="one JSON object per query per line")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("duplicates", help="groups of near-identical images")
    s.add_argument("--threshold", type=float, default=None, help="0..1 (default: calibrated)")
    s.add_argument("--weights", help="e.g. clip=1,cnn=1,hsv=1 (default: calibrated)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_duplicates)

    s = sub.add_parser("status", help="points, backend, models, mirror lag")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("reconcile", help="bring folder, store and mirror back in sync")
    s.set_defaults(func=cmd_reconcile)

    s = sub.add_parser("migrate", help="apply pending store schema migrations")
    s.set_defaults(func=cmd_migrate)

    from api.auth_cli import add_auth_commands

    add_auth_commands(sub)

    s = sub.add_parser("serve", help="serve the web UI and API")
    s.add_argument("--port", type=int, default=None, help="default: LOOKALIKE_PORT (5050)")
    s.add_argument("--host", default=None, help="default: LOOKALIKE_HOST (127.0.0.1)")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A server's operator wants its start-up steps (models loaded, ready in N s) in the log.
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "serve" else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # faiss logs every SIMD build it tries and fails to find, which reads like an error.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    global _json_out
    _json_out = sys.stdout
    quiet = getattr(args, "json", False) or args.command == "reconcile"
    try:
        with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
            return int(args.func(args))
    except LookalikeError as exc:
        err.print(f"[red]error:[/] {exc.detail}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    # `python -m api.cli` runs this file as __main__; the commands import api.cli, a second
    # copy whose settings (where JSON goes) main() would not have set. Run that one instead.
    from api.cli import main as canonical_main

    sys.exit(canonical_main())
