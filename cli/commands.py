"""The ``lookalike`` commands that work on the library. Thin: parse, call one use case,
print. The use cases are the ones the HTTP API calls (``engine.composition.Lookalike``), so
a search from the terminal and one from the web page give the same answer.

While ``lookalike serve`` holds the data directory, ``status``, ``search``, ``index``,
``reconcile`` and ``duplicates`` go through that server instead (``cli.remote``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.output import emit, err, note, print_search, print_status, progress_bar
from cli.remote import beside_server
from cli.search import add_search_arguments
from engine.defaults import DEFAULT_K
from engine.errors import LookalikeError
from engine.folder import PathKeys
from engine.library import parse_tags

if TYPE_CHECKING:
    from engine.composition import Lookalike
    from engine.indexer import IndexReport
    from engine.results import SearchResult
    from engine.search_request import SearchRequest
    from engine.settings import Settings


def settings() -> Settings:
    from pydantic import ValidationError

    from engine.settings import Settings
    from engine.settings_text import settings_sentence

    try:
        return Settings()
    except ValidationError as exc:  # name the variable and what it takes, no traceback
        raise LookalikeError(settings_sentence(exc.errors())) from None


@contextmanager
def lookalike(s: Settings | None = None, *, index_only: bool = False) -> Iterator[Lookalike]:
    from engine.composition import Lookalike

    lk = Lookalike(s or settings(), index_only=index_only)
    try:
        yield lk
    finally:
        lk.close()


def cmd_index(args: argparse.Namespace) -> int:
    tags = parse_tags(args.tags, option="--tags")
    s = settings()
    with beside_server(s.data_dir, note) as remote:
        if remote is not None:
            body: dict[str, Any] = {"folder": _library_folder(s, args.path), "tags": tags}
            with progress_bar() as progress:
                report = remote.job("/api/v1/reindex", body, progress)
        else:
            # Only indexing: the models take less memory (ModelConfig.index_only).
            with lookalike(s, index_only=True) as lk, progress_bar() as progress:
                folder = Path(args.path) if args.path else None
                report = lk.indexing.index(folder, tags=tags, progress=progress).as_dict()
    if args.json:
        emit(report)
        return 0
    _print_index_report(report)
    return 0


def _print_index_report(report: dict[str, Any]) -> None:
    err.print(
        f"[bold]{report['scanned']}[/] file{'' if report['scanned'] == 1 else 's'}: "
        f"{report['unchanged']} unchanged, "
        f"{report['embedded']} embedded, {report['attached']} duplicates or moves, "
        f"{report['reembedded']} re-embedded, {report['removed_files']} removed, "
        f"{len(report['failed'])} failed."
    )
    for failure in report["failed"]:
        err.print(f"  skipped {failure['path']}: {failure['error']}", markup=False)


def _library_folder(s: Settings, path: str | None) -> str | None:
    """PATH as a folder of the library, for the server (which indexes only its library)."""
    if not path:
        return None
    folder, library = Path(path).resolve(), s.library_dir.resolve()
    if not folder.is_relative_to(library):
        raise LookalikeError(
            f"The running server indexes only its library ({library}); {folder} is outside "
            "it. Stop the server to index that folder directly."
        )
    return folder.relative_to(library).as_posix() if folder != library else None


def cmd_search(args: argparse.Namespace) -> int:
    from cli import search as cli_search
    from engine.search import parse_weights

    parse_weights(args.weights)  # refused here, before any image is read or model loaded
    queries = cli_search.queries(args)
    if args.sheet and len(queries) != 1:
        raise LookalikeError(
            "--sheet makes one contact sheet: give exactly one query (several images with "
            "--combine are one)."
        )
    if args.sheet:
        _check_sheet_target(Path(args.sheet))  # before the search, not after it
    s = settings()
    keys = PathKeys(s.library_dir)
    with beside_server(s.data_dir, note) as remote:
        if remote is not None:
            for q in queries:
                body = cli_search.remote_body(args, q)
                print_search(q.label, remote.search(body), keys, args.json)
                if args.sheet:
                    _save_sheet(Path(args.sheet), partial(remote.sheet, body))
            return 0
        with lookalike(s) as lk:
            for q in queries:
                request = cli_search.request(args, q)
                result = lk.search.run(request)
                print_search(q.label, cli_search.answer(result), keys, args.json)
                if args.sheet:
                    _write_sheet(Path(args.sheet), q.label, request, result, lk)
    return 0


def _check_sheet_target(target: Path) -> None:
    import os

    from engine.contact_sheet import check_format

    check_format(target.suffix.lower().lstrip("."))
    folder = target.parent
    if not folder.is_dir():
        raise LookalikeError(f"Cannot write {target}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise LookalikeError(f"Cannot write {target}: the folder {folder} is not writable.")


def _save_sheet(target: Path, make: Callable[[str], bytes]) -> None:
    from engine.contact_sheet import check_format

    data = make(check_format(target.suffix.lower().lstrip(".")))
    try:
        target.write_bytes(data)
    except OSError as exc:
        raise LookalikeError(f"Cannot write {target}: {exc.strerror}.") from None
    err.print(f"contact sheet: {target}")


def _write_sheet(
    target: Path, query: str, request: SearchRequest, result: SearchResult, lk: Lookalike
) -> None:
    """A contact sheet of this result, as a PDF or PNG by the file's suffix."""
    from engine.contact_sheet import query_picture, render, search_sheet

    query_image = query_picture(request.image, query)
    paths = {h.id: lk.keys.path(h.path) for h in result.hits}  # the files themselves
    source = lk.search.defaults().source
    sheet = search_sheet(result, query, paths.__getitem__, query_image, source)
    _save_sheet(target, lambda fmt: render(sheet, fmt))


def cmd_status(args: argparse.Namespace) -> int:
    s = settings()
    with beside_server(s.data_dir, note) as remote:
        if remote is not None:
            status = remote.status()
        else:
            with lookalike(s) as lk:
                status = lk.status.read()
    if args.json:
        emit(status)
    else:
        print_status(status)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    s = settings()
    with beside_server(s.data_dir, note) as remote, progress_bar() as progress:
        if remote is not None:
            result = remote.job("/api/v1/reconcile", None, progress)
        else:
            with lookalike(s) as lk:
                result = lk.reconcile.run(progress=progress)
    if args.json:
        emit(result)
        return 0
    _print_index_report(result["index"])
    extra = {
        "mirror rows changed": result.get("mirror_changes"),
        "fused vectors repaired": result.get("fused_index_repaired"),
        "keypoints rebuilt": result.get("keypoints_rebuilt"),
        "keypoints dropped": result.get("keypoints_dropped"),
    }
    err.print("In sync: " + ", ".join(f"{n} {what}" for what, n in extra.items() if n is not None))
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
    import os
    import signal
    import sys

    import uvicorn

    from engine.local_server import claim, local_url, publish, withdraw

    s = settings()
    port = args.port or s.port
    host = args.host or s.host
    if not s.qdrant_url:
        claim(s.data_dir)  # held by another server or a CLI run: say so and stop
    # The app reads its settings from the environment: tell it where it listens.
    os.environ["LOOKALIKE_PORT"], os.environ["LOOKALIKE_HOST"] = str(port), host
    # While it runs, the CLI on this machine goes through this server (cli.remote): it
    # cannot open an embedded store the server holds. With a Qdrant server the CLI opens
    # the store itself, and API replicas that share one data directory (the compose cluster,
    # each its container's pid 1) must not overwrite or revoke each other's credential.
    published = None if s.qdrant_url else publish(s.data_dir, local_url(host, port))
    # uvicorn re-raises SIGTERM once it has shut down: exit through `finally` then, so the
    # credential is withdrawn (a kill -9 leaves it; the CLI ignores a dead pid's file).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1 whatever
        # the settings say; the app reads it from LOOKALIKE_TRUSTED_PROXIES only.
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host,
            port=port,
            log_level="info",
            proxy_headers=False,
        )
    finally:
        if published is not None:
            withdraw(s.data_dir, published)
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, not {text!r}")
    return int(text)


def add_library_commands(sub: Any) -> None:
    s = sub.add_parser("index", help="index a folder (incremental)")
    s.add_argument("path", nargs="?", help="folder (default: LOOKALIKE_LIBRARY_DIR)")
    s.add_argument("--tags", help="comma-separated tags for the images of this folder")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="find images similar to these")
    add_search_arguments(s, DEFAULT_K)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("status", help="points, backend, models, defaults, mirror lag")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("reconcile", help="bring folder, store and mirror back in sync")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_reconcile)

    s = sub.add_parser("watch", help="index changes to a folder as they happen (Ctrl-C stops)")
    s.add_argument("path", nargs="?", help="folder (default: LOOKALIKE_LIBRARY_DIR)")
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("migrate", help="apply pending store schema migrations")
    s.set_defaults(func=cmd_migrate)


def add_serve_command(sub: Any) -> None:
    s = sub.add_parser("serve", help="serve the web UI and API")
    s.add_argument("--port", type=_port, default=None, help="default: LOOKALIKE_PORT (5050)")
    s.add_argument("--host", default=None, help="default: LOOKALIKE_HOST (127.0.0.1)")
    s.set_defaults(func=cmd_serve)
