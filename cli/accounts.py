"""``lookalike passwd`` and ``lookalike apikey``: manage the secrets under data_dir/auth.

They only touch files, never the store, so they work while the server runs (it re-reads the
files): a new password logs every session out, a revoked key stops working at once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from cli.output import emit
from engine.errors import BadInput


def _data_dir() -> Any:
    from cli.commands import settings

    return settings().data_dir


def cmd_passwd(args: argparse.Namespace) -> int:
    from engine.accounts import PasswordStore

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New admin password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise BadInput("The two passwords differ; nothing was changed.")
    PasswordStore(_data_dir()).set(password)
    print("Password changed. Existing sessions are logged out.", file=sys.stderr)
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from engine.accounts import ApiKeyStore

    key, secret = ApiKeyStore(_data_dir()).create(args.scope, name=args.name or "")
    if args.json:
        emit({"id": key.id, "scope": key.scope, "name": key.name, "key": secret})
    else:
        print(secret)
        print(
            f"API key {key.id} ({key.scope}) created. It is shown only now: store it safely. "
            f"Use it as 'Authorization: Bearer <key>'.",
            file=sys.stderr,
        )
    return 0


def cmd_apikey_list(args: argparse.Namespace) -> int:
    from engine.accounts import ApiKeyStore

    keys = ApiKeyStore(_data_dir()).all()
    if args.json:
        rows = [
            {"id": k.id, "scope": k.scope, "name": k.name, "created_at": k.created_at} for k in keys
        ]
        emit(rows)
        return 0
    for k in keys:
        created = datetime.fromtimestamp(k.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{k.id}  {k.scope:<5}  {created} UTC  {k.name}")
    if not keys:
        print(
            "No API keys. Create one with `lookalike apikey create --scope read`.", file=sys.stderr
        )
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from engine.accounts import ApiKeyStore

    key = ApiKeyStore(_data_dir()).revoke(args.id)
    print(f"API key {key.id} ({key.scope}) revoked.", file=sys.stderr)
    return 0


def add_account_commands(sub: Any) -> None:
    """Register ``passwd`` and ``apikey`` on the CLI's subparsers."""
    s = sub.add_parser("passwd", help="change the admin password of the web UI")
    s.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")
    s.set_defaults(func=cmd_passwd)

    keys = sub.add_parser("apikey", help="API keys for scripts (Authorization: Bearer <key>)")
    actions = keys.add_subparsers(dest="action", required=True)
    s = actions.add_parser("create", help="create a key and print it (once)")
    s.add_argument(
        "--scope",
        choices=("read", "write"),
        required=True,
        help="read: search and view; write: also upload, tag, delete, reindex",
    )
    s.add_argument("--name", help="a note saying who or what uses the key")
    s.add_argument("--json", action="store_true", help='print {"id", "scope", "name", "key"}')
    s.set_defaults(func=cmd_apikey_create)
    s = actions.add_parser("list", help="list keys (never the keys themselves)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_apikey_list)
    s = actions.add_parser("revoke", help="revoke a key by its id")
    s.add_argument("id")
    s.set_defaults(func=cmd_apikey_revoke)
