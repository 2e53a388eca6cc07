"""What ``lookalike search`` asks: its queries, as the engine's requests (direct) or as the
API's bodies (beside a running server). No printing, no settings: ``cli.commands`` runs them.

Each IMAGE (and each ``--image-id``) is its own search, printed in turn; with ``--combine
any|all`` they are one query of several images (at most 8). ``--like`` / ``--dislike`` mark
image ids on every query (relevance feedback).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LookalikeError

if TYPE_CHECKING:
    from engine.results import SearchResult
    from engine.search_request import SearchRequest


@dataclass
class CliQuery:
    """One search to run: a sentence, one image (file or id) or several."""

    label: str
    text: str | None = None
    files: list[tuple[str, bytes]] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    combine: str | None = None  # several images as one query


def queries(args: argparse.Namespace) -> list[CliQuery]:
    ids = list(args.image_id or ())
    if bool(args.images or ids) == bool(args.text):
        raise LookalikeError(
            "Give query image files (or --image-id) or --text, not both (nor neither)."
        )
    if args.text:
        return [CliQuery(args.text, text=args.text)]
    files: list[tuple[str, bytes]] = []
    for image in args.images:
        try:
            files.append((image, Path(image).read_bytes()))
        except OSError as exc:
            raise LookalikeError(f"Cannot read {image}: {exc.strerror}.") from None
    if args.combine:
        names = [name for name, _ in files] + ids
        label = f"{' + '.join(names)} ({args.combine})"
        return [CliQuery(label, files=files, image_ids=ids, combine=args.combine)]
    return [CliQuery(n, files=[(n, d)]) for n, d in files] + [
        CliQuery(i, image_ids=[i]) for i in ids
    ]


def request(args: argparse.Namespace, q: CliQuery) -> SearchRequest:
    """The engine's request for one query (a direct search)."""
    from engine.search import parse_weights
    from engine.search_request import Filters, QueryImage, SearchRequest

    common: dict[str, Any] = {
        "k": args.k,
        "filters": Filters(folders=tuple(args.folder or ()), tags_any=tuple(args.tag or ())),
        "liked": tuple(args.like or ()),
        "disliked": tuple(args.dislike or ()),
        "exclude": tuple(args.exclude or ()),
    }
    if q.text is not None:
        return SearchRequest(text=q.text, **common)
    weights = parse_weights(args.weights)  # None: the calibrated defaults, as the API uses
    if q.combine is not None:
        several = [QueryImage(data=d, name=n) for n, d in q.files]
        several += [QueryImage(image_id=i, name=i) for i in q.image_ids]
        return SearchRequest(queries=tuple(several), combine=q.combine, weights=weights, **common)
    inside = getattr(args, "inside", None)  # None: the server's setting
    if q.files:
        ((name, data),) = q.files
        return SearchRequest(image=data, image_name=name, weights=weights, inside=inside, **common)
    return SearchRequest(image_id=q.image_ids[0], weights=weights, inside=inside, **common)


def remote_body(args: argparse.Namespace, q: CliQuery) -> dict[str, Any]:
    """httpx keyword arguments for ``POST /api/v1/search`` (or its sheet) with this query."""
    named = (("folders", args.folder), ("tags_any", args.tag))
    filters = {name: values for name, values in named if values}
    id_lists = {
        "liked": list(args.like or ()),
        "disliked": list(args.dislike or ()),
        "exclude": list(args.exclude or ()),
    }
    id_lists = {name: ids for name, ids in id_lists.items() if ids}
    if not q.files:  # JSON: a sentence, a stored image, or stored images
        body: dict[str, Any] = {"k": args.k, **id_lists}
        if q.text is not None:
            body["text"] = q.text
        elif q.combine is not None:
            body.update(image_ids=q.image_ids, combine=q.combine)
        else:
            body["image_id"] = q.image_ids[0]
            if getattr(args, "inside", None) is not None:
                body["inside"] = args.inside
        if args.weights and q.text is None:
            from engine.search import parse_weights

            body["weights"] = parse_weights(args.weights)
        return {"json": {**body, "filters": filters} if filters else body}
    part = "images" if q.combine is not None else "image"
    files = [(part, (Path(n).name, d, "application/octet-stream")) for n, d in q.files]
    form: dict[str, str | list[str]] = {"k": str(args.k), **id_lists}  # lists: repeated parts
    if q.combine is not None:
        form.update(combine=q.combine, image_ids=q.image_ids)
    elif getattr(args, "inside", None) is not None:
        form["inside"] = "true" if args.inside else "false"
    if args.weights:
        form["weights"] = args.weights
    if filters:
        form["filters"] = json.dumps(filters)
    return {"files": files, "data": form}


def answer(result: SearchResult) -> dict[str, Any]:
    """A direct search's result in the shape of the API's answer (``print_search`` reads)."""
    hits = [
        {
            "id": h.id,
            "paths": list(h.payload.get("paths") or [h.path]),
            "score": round(h.score, 6),
            "scores": {role: round(s, 6) for role, s in h.scores.items()},
            "near_duplicate": h.near_duplicate,
            "matched_query": h.query_index,
            "verified": None
            if h.verified is None
            else {
                "inliers": h.verified.inliers,
                "method": h.verified.method,
                "sentence": h.verified.sentence(),
            },
        }
        for h in result.hits
    ]
    return {"hits": hits, "timings": result.timings, "weights": result.weights}


def add_search_arguments(s: argparse.ArgumentParser, default_k: int) -> None:
    s.add_argument("images", nargs="*", metavar="IMAGE")
    s.add_argument("--text", help="search by a sentence instead (needs CLIP)")
    s.add_argument(
        "--image-id", action="append", metavar="ID", help="a stored image as a query (repeatable)"
    )
    s.add_argument(
        "--combine",
        choices=("any", "all"),
        help="the images are one query: like any of them, or like all (at most 8)",
    )
    s.add_argument("--like", action="append", metavar="ID", help="a right hit (repeatable)")
    s.add_argument("--dislike", action="append", metavar="ID", help="a wrong hit (repeatable)")
    s.add_argument(
        "--exclude", action="append", metavar="ID", help="never show this image (repeatable)"
    )
    s.add_argument(
        "--inside",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="look for library images inside the picture (a catalogue page, a screenshot): "
        "--inside always (slower), --no-inside never; by default only when the whole "
        "picture proves no copy (LOOKALIKE_INSIDE)",
    )
    s.add_argument("--k", type=int, default=default_k, help=f"hits (default {default_k})")
    s.add_argument("--weights", help="e.g. clip=1,cnn=1,hsv=1 (default: calibrated)")
    s.add_argument("--folder", action="append", help="restrict to a folder (repeatable)")
    s.add_argument("--tag", action="append", help="restrict to a tag (repeatable, any)")
    s.add_argument("--json", action="store_true", help="one JSON object per query per line")
    s.add_argument("--sheet", metavar="FILE", help="also write a contact sheet (.pdf or .png)")
