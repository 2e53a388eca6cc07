"""Request and response shapes of the duplicates report and its review (``/api/v1/duplicates``).

Kept apart from ``api.schemas`` (search, images, jobs): the review has its own vocabulary.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

from api.schemas import Weights

Decision = Literal["not_duplicates", "keep_all", "keep_one"]
GroupKind = Literal["exact", "copy", "similar"]
ImageRef = Annotated[str, Meta(min_length=1, max_length=64)]
Signature = Annotated[str, Meta(pattern=r"^[0-9a-f]{20}$")]


class DuplicateMember(Struct, kw_only=True):
    """One image content; ``paths`` lists every file holding exactly these bytes."""

    id: str
    filename: str
    paths: list[str]
    score: float  # best score with another member (1.0: exact copies)
    thumbnail_url: str
    file_url: str
    width: int | None = None
    height: int | None = None


class DuplicateGroup(Struct, kw_only=True):
    score: float  # the best pair's score
    size: int  # files in the group
    members: list[DuplicateMember]
    # "exact": one content at several paths, or every member scores >= COPY_THRESHOLD;
    # "copy": every member verified as a copy of the first by local features (a crop, a
    # resized or re-coloured copy); "similar": above the near-duplicate threshold only.
    kind: GroupKind = "similar"
    signature: str = ""  # the group's identity: a hash of its sorted member ids
    decision: Decision | None = None
    kept: str | None = None  # the image a keep_one decision keeps
    decided_at: str | None = None
    # A decision was made on an earlier form of this group (a new image joined it since).
    reopened: bool = False


class DuplicateReport(Struct, kw_only=True):
    threshold: float
    weights: dict[str, float]  # role -> weight
    groups: list[DuplicateGroup]
    # More pairs than the report groups scored above the threshold: the groups are partial.
    truncated: bool = False
    hidden: int = 0  # groups left out because they were dismissed (see include_dismissed)


class DuplicateDecision(Struct, kw_only=True, forbid_unknown_fields=True):
    """A decision on one group, naming the images the person saw in it."""

    members: Annotated[list[ImageRef], Meta(min_length=1, max_length=1000)]
    decision: Decision
    kept: ImageRef | None = None  # keep_one: the image to keep (required); ignored otherwise
    signature: Signature | None = None  # the group's signature as shown
    threshold: Annotated[float, Meta(ge=0.5, le=1)] | None = None
    weights: Weights | None = None


class DuplicateApply(Struct, kw_only=True, forbid_unknown_fields=True):
    """Delete every image but the kept one in each group marked keep_one."""

    # Must be true: with false nothing is deleted, and the 400 says how many images would be.
    confirm: bool
    threshold: Annotated[float, Meta(ge=0.5, le=1)] | None = None
    weights: Weights | None = None


class DeletedImage(Struct, kw_only=True):
    id: str
    paths: list[str]
    group: str  # the signature of the group it was deleted from


class DuplicateApplyResult(Struct, kw_only=True):
    deleted: list[DeletedImage]
    groups: int  # keep_one groups applied


class DuplicateConflict(Struct, kw_only=True):
    """409: the group changed since it was shown; ``group`` is the group as it is now."""

    status: int
    error: str
    detail: str
    group: DuplicateGroup | None = None
