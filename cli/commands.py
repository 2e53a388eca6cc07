"""The ``lookalike`` commands that work on the library. Thin: parse, call one use case,
print. The use cases are the ones the HTTP API calls (``engine.composition.Lookalike``), so
a search from the terminal and one from the web page give the same answer."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from cli.output import emit, err, out, progress_bar
from engine.defaults import DEFAULT_K
from engine.errors import LookalikeError

if TYPE_CHECKING:
    from engine.composition import Lookalike
    from engine.indexer import IndexReport
    from engine.results import SearchResult
    from engine.search import SearchRequest
    from engine.settings import Settings


def settings() -> Settings:
    from engine.settings import Settings

    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError: name the setting, no traceback
        raise LookalikeError(f"Invalid settings: {exc}") from None


@contextmanager
def lookalike() -> Iterator[Lookalike]:
    from engine.composition import Lookalike

    lk = Lookalike(settings())
    try:
        yield lk
    finally:
        lk.close()


def cmd_index(args: argparse.Namespace) -> int:
    tags = [t.strip() for t in (args.tags or "").split(",") if t.strip()]
    with lookalike() as lk, progress_bar() as progress:
        folder = Path(args.path) if args.path else None
        report = lk.indexing.index(folder, tags=tags, progress=progress)
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
    from engine.search import Filters, SearchRequest, parse_weights

    weights = parse_weights(args.weights)  # None: the calibrated defaults, as the API uses
    filters = Filters(folders=tuple(args.folder or ()), tags_any=tuple(args.tag or ()))
    if bool(args.images) == bool(args.text):
        raise LookalikeError("Give either query image files or --text, not both (nor neither).")
    queries: list[tuple[str, SearchRequest]] = []
    if args.text:
        queries.append((args.text, SearchRequest(text=args.text, k=args.k, filters=filters)))
    for image in args.images:
        try:
            data = Path(image).read_bytes()
        except OSError as exc:
            raise LookalikeError(f"Cannot read {image}: {exc.strerror}.") from None
        request = SearchRequest(
            image=data, image_name=image, k=args.k, weights=weights, filters=filters
        )
        queries.append((image, request))
    if args.sheet and len(queries) != 1:
        raise LookalikeError("--sheet makes one contact sheet: give exactly one query.")
    with lookalike() as lk:
        for query, request in queries:
            result = lk.search.run(request)
            _print_result(query, result, lk, as_json=args.json)
            if args.sheet:
                _write_sheet(Path(args.sheet), query, request, result, lk)
    return 0


def _write_sheet(
    target: Path, query: str, request: SearchRequest, result: SearchResult, lk: Lookalike
) -> None:
    """A contact sheet of this result, as a PDF or PNG by the file's suffix."""
    from embedder.decode import decode_image
    from engine.contact_sheet import check_format, render, search_sheet

    fmt = check_format(target.suffix.lower().lstrip("."))
    query_image = decode_image(request.image, query).image if request.image else None
    paths = {h.id: lk.keys.path(h.path) for h in result.hits}  # the files themselves
    sheet = search_sheet(result, query, paths.__getitem__, query_image, lk.search.defaults().source)
    try:
        target.write_bytes(render(sheet, fmt))
    except OSError as exc:
        raise LookalikeError(f"Cannot write {target}: {exc.strerror}.") from None
    err.print(f"contact sheet: {target}")


def _print_result(query: str, result: SearchResult, lk: Lookalike, *, as_json: bool) -> None:
    hits: list[dict[str, Any]] = [
        {
            "id": h.id,
            "path": str(lk.keys.path(h.path)),
            "score": round(h.score, 6),
            "scores": {m: round(s, 6) for m, s in h.scores.items()},
            "near_duplicate": h.near_duplicate,
        }
        for h in result.hits
    ]
    timings = {k: round(v, 2) for k, v in result.timings.items()}
    if as_json:
        emit({"query": query, "hits": hits, "timings": timings, "weights": result.weights})
        return
    table = Table(title=f"{query}  ({', '.join(f'{k}={v}' for k, v in timings.items())})")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    for role in result.models:
        table.add_column(role, justify="right")
    table.add_column("path")
    for i, h in enumerate(hits, 1):
        per_model = [f"{h['scores'].get(r, 0):.3f}" for r in result.models]
        mark = "  [bold]near duplicate[/]" if h["near_duplicate"] else ""
        table.add_row(str(i), f"{h['score']:.3f}", *per_model, f"{h['path']}{mark}")
    out.print(table)


def cmd_duplicates(args: argparse.Namespace) -> int:
    from engine.search import parse_weights

    weights = parse_weights(args.weights)
    with lookalike() as lk:
        report = lk.duplicates.report(args.threshold, weights)
        if args.json:
            emit(_report_dict(report))
            return 0
        out.print(f"[bold]{len(report.groups)}[/] group(s) at threshold {report.threshold:.3f}")
        for i, group in enumerate(report.groups, 1):
            out.print(f"[bold]#{i}[/]  best {group.score:.3f}, {group.size} files")
            for m in group.members:
                for path in m.paths:
                    out.print(f"  {m.score:.3f}  {lk.keys.path(path)}")
    return 0


def _report_dict(report: Any) -> dict[str, Any]:
    return {
        "threshold": report.threshold,
        "weights": report.weights,
        "groups": [
            {
                "score": round(min(1.0, g.score), 6),
                "size": g.size,
                "members": [
                    {"id": m.id, "paths": m.paths, "score": round(min(1.0, m.score), 6)}
                    for m in g.members
                ],
            }
            for g in report.groups
        ],
    }


def cmd_status(args: argparse.Namespace) -> int:
    with lookalike() as lk:
        status = lk.status.read()
    if args.json:
        emit(status)
        return 0
    out.print(f"[bold]{status['points']}[/] images, backend [bold]{status['backend']}[/]")
    out.print(f"data: {status['data_dir']}   library: {status['library_dir']}")
    for m in status["roles"]:
        note = f"  [yellow]FALLBACK: {m['reason']}[/]" if m.get("fallback") else ""
        name = m["name"] or "off"
        out.print(f"  {m['role']:<5} {name:<14} weights={m['weights'] or '-'}{note}")
    defaults = status["defaults"]
    weights = ", ".join(f"{r}={w:g}" for r, w in defaults["weights"].items())
    threshold = defaults["near_duplicate_threshold"]
    near = f"{threshold:.3f}" if threshold is not None else "none (uncalibrated)"
    out.print(f"defaults: {weights}; near duplicate at {near} ({defaults['source']})")
    out.print(f"mirror: {status['mirror']['points']} points, lag {status['mirror_lag']}")
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    with lookalike() as lk, progress_bar() as progress:
        result = lk.reconcile.run(progress=progress)
    emit(result)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    folder = Path(args.path).resolve() if args.path else None

    def said(report: IndexReport) -> None:
        changed = report.embedded + report.attached + report.removed_files
        err.print(
            f"{changed} change(s): {report.embedded} embedded, {report.attached} moved or "
            f"copied, {report.removed_files} removed, {len(report.failed)} failed"
        )
        for key, reason in report.failed:
            err.print(f"  [yellow]skipped[/] {key}: {reason}")

    with lookalike() as lk:
        watched = folder or lk.settings.library_dir
        with progress_bar() as progress:  # catch up first: what changed while nobody watched
            said(lk.indexing.index(folder, progress=progress))
        err.print(f"watching {watched} (Ctrl-C stops)")
        watcher = lk.watcher(folder, on_report=said)
        watcher.run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    with lookalike() as lk:
        applied = lk.resources.open_store()
    err.print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    s = settings()
    port = args.port or s.port
    host = args.host or s.host
    # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1 whatever the
    # settings say; the app reads it from LOOKALIKE_TRUSTED_PROXIES only.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        proxy_headers=False,
    )
    return 0


def add_library_commands(sub: Any) -> None:
    s = sub.add_parser("index", help="index a folder (incremental)")
    s.add_argument("path", nargs="?", help="folder (default: LOOKALIKE_LIBRARY_DIR)")
    s.add_argument("--tags", help="comma-separated tags for the images of this folder")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="find images similar to these")
    s.add_argument("images", nargs="*", metavar="IMAGE")
    s.add_argument("--text", help="search by a sentence instead (needs CLIP)")
    s.add_argument("--k", type=int, default=DEFAULT_K, help=f"hits (default {DEFAULT_K})")
    s.add_argument("--weights", help="e.g. clip=1,cnn=1,hsv=1 (default: calibrated)")
    s.add_argument("--folder", action="append", help="restrict to a folder (repeatable)")
    s.add_argument("--tag", action="append", help="restrict to a tag (repeatable, any)")
    s.add_argument("--json", action="store_true", help="one JSON object per query per line")
    s.add_argument("--sheet", metavar="FILE", help="also write a contact sheet (.pdf or .png)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("duplicates", help="groups of near-identical images")
    s.add_argument("--threshold", type=float, default=None, help="0.5..1 (default: calibrated)")
    s.add_argument("--weights", help="e.g. clip=1,cnn=1,hsv=1 (default: calibrated)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_duplicates)

    s = sub.add_parser("status", help="points, backend, models, defaults, mirror lag")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("reconcile", help="bring folder, store and mirror back in sync")
    s.set_defaults(func=cmd_reconcile)

    s = sub.add_parser("watch", help="index changes to a folder as they happen (Ctrl-C stops)")
    s.add_argument("path", nargs="?", help="folder (default: LOOKALIKE_LIBRARY_DIR)")
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("migrate", help="apply pending store schema migrations")
    s.set_defaults(func=cmd_migrate)


def add_serve_command(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve the web UI and API")
    s.add_argument("--port", type=int, default=None, help="default: LOOKALIKE_PORT (5050)")
    s.add_argument("--host", default=None, help="default: LOOKALIKE_HOST (127.0.0.1)")
    s.set_defaults(func=cmd_serve)
