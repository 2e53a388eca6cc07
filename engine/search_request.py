"""What a search asks for, whichever way it came in (the CLI, the REST API, the web page):
``SearchRequest``, its ``Filters`` and, for a query of several images, each ``QueryImage``.
``engine.search.Search.run`` answers it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.query import Box
from store.base import Filter

MAX_EXCLUDE = 100  # image ids a search may leave out


@dataclass(frozen=True)
class Filters:
    """What a user narrows a search to. Empty fields do not constrain."""

    folders: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    colour: str | None = None  # a palette colour within colour_tolerance (delta E) of this
    colour_tolerance: float | None = None

    def store_filter(self) -> Filter:
        """The store's filter, without the colour (which needs the palette index)."""
        return Filter(
            folders=tuple(f.strip("/") for f in self.folders),
            tags_any=tuple(self.tags_any),
            tags_all=tuple(self.tags_all),
            formats=tuple(f.upper() for f in self.formats),
            min_width=self.min_width,
            max_width=self.max_width,
            min_height=self.min_height,
            max_height=self.max_height,
        )


@dataclass(frozen=True)
class QueryImage:
    """One image of a query of several: an uploaded picture or a stored image, maybe a
    region of it."""

    data: bytes | None = None
    name: str = "query"
    image_id: str | None = None
    box: Box | None = None


@dataclass(frozen=True)
class SearchRequest:
    """Exactly one of ``image``, ``image_id``, ``text`` and ``queries`` (several images,
    combined by ``combine``: see ``engine.multi_query``). ``weights`` None: the calibrated
    defaults; ``k`` None: the default k."""

    image: bytes | None = None
    image_name: str = "query"
    image_id: str | None = None
    text: str | None = None
    k: int | None = None
    weights: Mapping[str, float] | None = None
    filters: Filters | None = None
    box: Box | None = None
    threshold: float | None = None  # drop hits scoring below it
    queries: tuple[QueryImage, ...] = ()
    combine: str = "any"
    # Relevance feedback (engine.feedback): image ids marked right or wrong on a result.
    liked: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    # Look inside the picture for library images (engine.inside): a picture query only.
    # None: the setting (LOOKALIKE_INSIDE, 'auto' by default).
    inside: bool | None = None
    # Image ids never to show (Find similar leaves out the image it starts from); the
    # answer still has k hits.
    exclude: tuple[str, ...] = ()
