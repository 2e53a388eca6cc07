"""The ``lookalike`` command line: an adapter over the same use cases as the HTTP API.

Every failure is one plain line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

from cli.accounts import add_account_commands
from cli.commands import add_library_commands, add_serve_command
from cli.duplicates import add_duplicates_command
from cli.output import note, set_json_stream
from engine.errors import LookalikeError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lookalike", description="Self-hosted image search.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    add_library_commands(sub)
    add_duplicates_command(sub)
    add_account_commands(sub)
    add_serve_command(sub)
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
    set_json_stream(sys.stdout)
    quiet = getattr(args, "json", False)
    try:
        with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext():
            return int(args.func(args))
    except KeyboardInterrupt:
        note("interrupted")
        return 130
    except Exception as exc:
        # One plain line, whatever failed (store down, server gone, lock held, bad file):
        # the traceback only with --verbose, for a bug report.
        if args.verbose:
            logging.getLogger("lookalike").exception("failed")
        note(f"error: {failure_sentence(exc)}")
        return 2


def failure_sentence(exc: BaseException) -> str:
    """What went wrong, as a sentence a person can act on."""
    from embedder.errors import EmbedderError
    from store.base import StoreError

    if isinstance(exc, LookalikeError):
        text = exc.detail
    elif isinstance(exc, StoreError | EmbedderError):
        text = str(exc)  # written for people, naming the setting that fixes it
    elif isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        text = f"{exc.strerror or exc}{where}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc}; run with --verbose for details"
    text = " ".join(str(text).split()) or type(exc).__name__
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."
