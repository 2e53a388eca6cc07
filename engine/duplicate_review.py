"""Duplicate review that remembers: each group of the duplicates report is an "exact copy"
or "similar" group, and a person's decision on it is kept as point payload.

A decision is written on every member of the group (payload key ``dup_review``): the
decision, the group's *signature* (a hash of its sorted member ids), the kept id and when.
Payload lives in the store, the source of truth, so a decision survives restarts, reindexing
(the indexer only merges payload keys it owns) and a move to a Qdrant server. A group shows
a decision only while every member carries it under the group's current signature: when a
new image joins a dismissed group, the signature changes and the group is shown again,
flagged ``reopened``.

A decision names the members the person saw; when the group has changed since, it is
refused (``GroupChanged``, a 409 carrying the group as it is now). ``apply`` deletes every
member but the kept one of each "keep one" group, through the library use case.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.defaults import COPY_THRESHOLD
from engine.errors import BadInput, Conflict, NotFound

if TYPE_CHECKING:
    from engine.duplicates import Duplicates, Group, Report
    from engine.library import Library
    from store.base import Store

REVIEW_KEY = "dup_review"
NOT_DUPLICATES, KEEP_ALL, KEEP_ONE = "not_duplicates", "keep_all", "keep_one"
DECISIONS = (NOT_DUPLICATES, KEEP_ALL, KEEP_ONE)
DISMISSED = (NOT_DUPLICATES, KEEP_ALL)  # hidden unless asked for; keep_one waits for apply
# exact: one content, or every member >= COPY_THRESHOLD; copy: every member verified as a
# copy of the best one by local features (engine.verification); similar: look-alikes only.
EXACT, COPY, SIMILAR = "exact", "copy", "similar"


def signature(member_ids: Sequence[str]) -> str:
    """A group's identity: its members, in any order."""
    text = "\n".join(sorted(set(member_ids)))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class ReviewedGroup:
    group: Group
    kind: str  # EXACT | COPY | SIMILAR
    signature: str
    decision: str | None = None
    kept: str | None = None  # the image kept by a keep_one decision
    decided_at: str | None = None
    reopened: bool = False  # a decision was made on an earlier form of this group

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.group.members]


@dataclass
class ReviewReport:
    report: Report
    groups: list[ReviewedGroup]
    hidden: int = 0  # dismissed groups left out


@dataclass
class Deleted:
    id: str
    paths: list[str]
    signature: str


@dataclass
class ApplyResult:
    deleted: list[Deleted] = field(default_factory=list)
    groups: int = 0


class GroupChanged(Conflict):
    """A decision on a group that changed since it was shown; carries the group now."""

    def __init__(self, detail: str, group: ReviewedGroup | None) -> None:
        super().__init__(detail)
        self.group = group


def kind_of(group: Group, copies: Callable[[Sequence[str]], bool] | None = None) -> str:
    """``copies(ids)``: whether every image is a verified copy of the first."""
    if len(group.members) == 1 or all(m.score >= COPY_THRESHOLD for m in group.members):
        return EXACT
    if copies is not None and copies([m.id for m in group.members]):
        return COPY
    return SIMILAR


def reviewed(group: Group, copies: Callable[[Sequence[str]], bool] | None = None) -> ReviewedGroup:
    """The group with its kind, signature and the decision its members carry."""
    ids = [m.id for m in group.members]
    sig = signature(ids)
    out = ReviewedGroup(group=group, kind=kind_of(group, copies), signature=sig)
    marks = [m.payload.get(REVIEW_KEY) for m in group.members]
    current = [x for x in marks if isinstance(x, Mapping) and x.get("signature") == sig]
    if current and len(current) == len(marks):
        first = current[0]
        if all(x.get("decision") == first.get("decision") for x in current):
            out.decision = str(first.get("decision"))
            out.kept = first.get("kept")
            out.decided_at = first.get("decided_at")
            return out
    out.reopened = any(isinstance(x, Mapping) and x.get("decision") for x in marks)
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DuplicateReview:
    """Review the duplicates report: kinds, remembered decisions, and the bulk keep-one."""

    def __init__(
        self,
        duplicates: Duplicates,
        store: Callable[[], Store],
        library: Library,
        sync_mirror: Callable[..., Any],
        clock: Callable[[], str] = _now,
        copies: Callable[[Sequence[str]], bool] | None = None,
    ) -> None:
        self._duplicates = duplicates
        self._copies = copies  # engine.verification: tells true copies from look-alikes
        self._store = store
        self._library = library
        self._sync_mirror = sync_mirror
        self._clock = clock
        # Decisions and deletes take turns: an apply never runs beside a decision that
        # changes which image a group keeps, nor beside another apply.
        self._writing = threading.Lock()

    def report(
        self,
        threshold: float | None = None,
        weights: Mapping[str, float] | None = None,
        *,
        include_dismissed: bool = False,
        cancelled: Callable[[], bool] | None = None,
    ) -> ReviewReport:
        """The duplicates report, each group reviewed; dismissed groups (not duplicates,
        keep all) left out unless ``include_dismissed``."""
        kw = {"cancelled": cancelled} if cancelled is not None else {}
        report = self._duplicates.report(threshold, weights, **kw)
        groups = [reviewed(g, self._copies) for g in report.groups]
        shown = [g for g in groups if include_dismissed or g.decision not in DISMISSED]
        return ReviewReport(report=report, groups=shown, hidden=len(groups) - len(shown))

    def find(
        self,
        seen: Sequence[str],
        threshold: float | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> ReviewedGroup:
        """The group as it is now that holds the images ``seen`` (a group's member ids, or
        its signature). NotFound when none does; GroupChanged when its members differ."""
        seen = [str(s) for s in seen]
        if not seen:
            raise BadInput("Name the group: the ids of its images, as shown.")
        groups = self.report(threshold, weights, include_dismissed=True).groups
        for g in groups:
            if len(seen) == 1 and g.signature == seen[0]:
                return g
        wanted = set(seen)
        for g in groups:
            if wanted & set(g.ids):
                if set(g.ids) != wanted:
                    raise GroupChanged(
                        "This group has changed since it was shown: "
                        f"it now holds {len(g.ids)} images. Review it again.",
                        g,
                    )
                return g
        raise NotFound(
            "No duplicate group holds these images any more: they were deleted, or they no "
            "longer look alike at this threshold."
        )

    def decide(
        self,
        members: Sequence[str],
        decision: str,
        kept: str | None = None,
        *,
        signature_seen: str | None = None,
        threshold: float | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> ReviewedGroup:
        """Remember ``decision`` on the group of ``members`` (the ids the person saw)."""
        with self._writing:
            return self._decide(members, decision, kept, signature_seen, threshold, weights)

    def _decide(
        self,
        members: Sequence[str],
        decision: str,
        kept: str | None,
        signature_seen: str | None,
        threshold: float | None,
        weights: Mapping[str, float] | None,
    ) -> ReviewedGroup:
        if decision not in DECISIONS:
            raise BadInput(f"A decision is one of {', '.join(DECISIONS)}; got {decision!r}.")
        group = self.find(members, threshold, weights)  # first: an unknown group is a 404
        if decision == KEEP_ONE and not kept:
            raise BadInput("Say which image to keep: 'keep_one' needs the kept image's id.")
        kept = kept if decision == KEEP_ONE else None  # the other decisions keep every image
        if signature_seen is not None and signature_seen != group.signature:
            raise GroupChanged("This group has changed since it was shown. Review it again.", group)
        if kept is not None and kept not in group.ids:
            raise BadInput(f"The kept image {kept} is not one of this group's images.")
        if decision == KEEP_ONE and len(group.ids) < 2:
            raise BadInput(
                "These files are one image content stored at several paths: there is no "
                "other image to delete. Remove the extra files from the folder instead."
            )
        mark = {"decision": decision, "signature": group.signature, "kept": kept}
        mark["decided_at"] = self._clock()
        self._store().set_payload(group.ids, {REVIEW_KEY: mark})
        self._sync_mirror()
        for m in group.group.members:
            m.payload[REVIEW_KEY] = dict(mark)
        return reviewed(group.group, self._copies)

    def pending(
        self, threshold: float | None = None, weights: Mapping[str, float] | None = None
    ) -> list[tuple[ReviewedGroup, list[str]]]:
        """Each "keep one" group with the ids ``apply`` would delete."""
        groups = self.report(threshold, weights, include_dismissed=True).groups
        return [
            (g, [i for i in g.ids if i != g.kept])
            for g in groups
            if g.decision == KEEP_ONE and g.kept in g.ids
        ]

    def apply(
        self,
        confirm: bool,
        threshold: float | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> ApplyResult:
        """Delete every image but the kept one in each "keep one" group (to the trash,
        through the library). Without ``confirm`` nothing is deleted: BadInput says what
        would be."""
        with self._writing:
            pending = self.pending(threshold, weights)
            count = sum(len(ids) for _, ids in pending)
            if not confirm:
                raise BadInput(
                    f"This would delete {count} image(s) in {len(pending)} group(s) marked "
                    "'keep one'. Confirm to go ahead (confirm: true)."
                )
            result = ApplyResult()
            for group, ids in pending:
                if not self._still_decided(group):
                    continue  # withdrawn or changed since the report was read: keep them all
                result.groups += 1
                paths = {m.id: list(m.paths) for m in group.group.members}
                for point_id in ids:
                    try:
                        self._library.delete(point_id)
                    except NotFound:
                        continue  # already deleted by someone else: nothing left to do
                    result.deleted.append(
                        Deleted(point_id, paths.get(point_id, []), group.signature)
                    )
            return result

    def _still_decided(self, group: ReviewedGroup) -> bool:
        """The group's "keep one" as the store holds it now, not as the report (read from
        the mirror's cache) saw it: every member still there, each with this decision, this
        signature and this kept image."""
        points = self._store().retrieve(group.ids)
        if {p.id for p in points} != set(group.ids):
            return False
        for p in points:
            mark = p.payload.get(REVIEW_KEY)
            if not isinstance(mark, Mapping) or (
                mark.get("decision"),
                mark.get("signature"),
                mark.get("kept"),
            ) != (KEEP_ONE, group.signature, group.kept):
                return False
        return True
