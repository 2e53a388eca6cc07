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
from cli.output import err, set_json_stream
from engine.errors import LookalikeError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lookalike", description="Self-hosted image search.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    add_library_commands(sub)
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
