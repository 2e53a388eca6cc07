"""``lookalike duplicates``: the reviewed near-duplicate report, its CSV export and the bulk
keep-one, directly on the data directory or through the server that holds it (``cli.remote``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.commands import lookalike, settings
from cli.output import emit, err, note, out
from cli.remote import Remote, beside_server
from engine.errors import LookalikeError
from engine.folder import PathKeys

if TYPE_CHECKING:
    from engine.composition import Lookalike
    from engine.duplicate_review import ReviewReport


def cmd_duplicates(args: argparse.Namespace) -> int:
    from engine.search import parse_weights

    weights = parse_weights(args.weights)
    s = settings()
    with beside_server(s.data_dir, note) as remote:
        if remote is not None:
            return _remote(remote, args, PathKeys(s.library_dir))
        with lookalike(s) as lk:
            return _direct(lk, args, weights, PathKeys(s.library_dir))


def _direct(lk: Lookalike, args: argparse.Namespace, weights: Any, keys: PathKeys) -> int:
    from engine.duplicate_export import to_csv

    review = lk.duplicate_review
    if args.apply:
        pending = review.pending(args.threshold, weights)
        count = sum(len(ids) for _, ids in pending)
        if not _confirmed(args, count, len(pending)):
            return 1
        result = review.apply(True, args.threshold, weights)
        return _print_deleted([{"id": d.id, "paths": d.paths} for d in result.deleted], args)
    report = review.report(args.threshold, weights, include_dismissed=args.all or bool(args.csv))
    if args.csv:
        return _write_csv(to_csv(report.groups), args.csv)
    return _print(report_dict(report), args, keys)


def _remote(remote: Remote, args: argparse.Namespace, keys: PathKeys) -> int:
    params: dict[str, Any] = {"threshold": args.threshold, "weights": args.weights}
    params = {k: v for k, v in params.items() if v}
    if args.apply:
        body: dict[str, Any] = {"threshold": args.threshold} if args.threshold else {}
        if args.weights:  # the same weights as the preview the person was shown
            from engine.search import parse_weights

            body["weights"] = parse_weights(args.weights)
        count = _would_delete(remote, body)
        if not _confirmed(args, count, None):
            return 1
        result = remote.call("POST", "/api/v1/duplicates/apply", json={**body, "confirm": True})
        return _print_deleted(result["deleted"], args)
    if args.csv:
        return _write_csv(remote.text("/api/v1/duplicates.csv", params), args.csv)
    report = remote.call(
        "GET", "/api/v1/duplicates", params={**params, "include_dismissed": args.all}
    )
    return _print(report, args, keys)


def _would_delete(remote: Remote, body: dict[str, Any]) -> int:
    """How many images the server would delete: its 400 without confirmation says so."""
    import re

    try:
        remote.call("POST", "/api/v1/duplicates/apply", json={**body, "confirm": False})
    except LookalikeError as exc:
        found = re.search(r"delete (\d+) image", exc.detail)
        if found is None:
            raise
        return int(found.group(1))
    return 0


def _confirmed(args: argparse.Namespace, count: int, groups: int | None) -> bool:
    if count == 0:
        note("No group is marked 'keep one': nothing to delete.")
        return True
    where = f" in {groups} group(s)" if groups is not None else ""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise LookalikeError(
            f"This would delete {count} image(s){where}; pass --yes to confirm without a prompt."
        )
    err.print(f"Delete {count} image(s){where}, keeping one per group? [y/N] ", end="")
    if input().strip().lower() in ("y", "yes"):
        return True
    note("Nothing deleted.")
    return False


def _write_csv(text: str, target: str) -> int:
    if target == "-":
        sys.stdout.write(text)
    else:
        Path(target).write_text(text, encoding="utf-8", newline="")
        note(f"wrote {target}")
    return 0


def _print_deleted(deleted: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if args.json:
        emit({"deleted": deleted})
        return 0
    out.print(f"[bold]{len(deleted)}[/] image(s) deleted (moved to the trash)")
    for d in deleted:
        for path in d["paths"]:
            out.print(f"  {path}", markup=False)
    return 0


def _print(report: dict[str, Any], args: argparse.Namespace, keys: PathKeys) -> int:
    if args.json:
        emit(report)
        return 0
    hidden = f", {report['hidden']} dismissed hidden (--all)" if report.get("hidden") else ""
    out.print(
        f"[bold]{len(report['groups'])}[/] group(s) at threshold {report['threshold']:.3f}{hidden}"
    )
    for i, group in enumerate(report["groups"], 1):
        decision = f", {group['decision']}" if group.get("decision") else ""
        out.print(
            f"[bold]#{i}[/]  {group['kind']}, best {group['score']:.3f}, "
            f"{group['size']} files{decision}"
        )
        for m in group["members"]:
            kept = "  (kept)" if group.get("kept") == m["id"] else ""
            for path in m["paths"]:
                out.print(f"  {m['score']:.3f}  {keys.path(path)}{kept}", markup=False)
    return 0


def report_dict(reviewed: ReviewReport) -> dict[str, Any]:
    report = reviewed.report
    return {
        "threshold": report.threshold,
        "weights": report.weights,
        "hidden": reviewed.hidden,
        "groups": [
            {
                "score": round(min(1.0, g.group.score), 6),
                "size": g.group.size,
                "kind": g.kind,
                "signature": g.signature,
                "decision": g.decision,
                "kept": g.kept,
                "members": [
                    {"id": m.id, "paths": m.paths, "score": round(min(1.0, m.score), 6)}
                    for m in g.group.members
                ],
            }
            for g in reviewed.groups
        ],
    }


def add_duplicates_command(sub: Any) -> None:
    s = sub.add_parser("duplicates", help="groups of near-identical images, and their review")
    s.add_argument("--threshold", type=float, default=None, help="0.5..1 (default: calibrated)")
    s.add_argument("--weights", help="e.g. clip=1,cnn=1,hsv=1 (default: calibrated)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--all", action="store_true", help="include groups marked not duplicates")
    s.add_argument(
        "--csv", nargs="?", const="-", metavar="FILE", help="write the report as CSV (- : stdout)"
    )
    s.add_argument(
        "--apply",
        action="store_true",
        help="delete all but the kept image in groups marked 'keep one' (asks first)",
    )
    s.add_argument("--yes", action="store_true", help="with --apply: do not ask")
    s.set_defaults(func=cmd_duplicates)
