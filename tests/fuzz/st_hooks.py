"""Schemathesis hooks for the live run (``SCHEMATHESIS_HOOKS=tests.fuzz.st_hooks``).

The document says an upload's file parts are images (``encoding: contentType: image/*``);
schemathesis has no generator for images, so a "schema-valid" upload would be random bytes,
which the server rightly refuses. This registers one: real PNG, JPEG, WebP and GIF files of
random size and content, so a positive case is an image and a negative one is not.
"""

from __future__ import annotations

import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _encode(fmt: str, size: tuple[int, int], seed: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def images(fmt: str) -> st.SearchStrategy[bytes]:
    sides = st.integers(min_value=8, max_value=96)
    return st.builds(_encode, st.just(fmt), st.tuples(sides, sides), st.integers(0, 2**32 - 1))


for media, fmt in {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}.items():
    schemathesis.openapi.media_type(media, images(fmt))


@schemathesis.deserializer("application/x-ndjson")
def search_steps(ctx: object, response: object) -> object:
    """``POST /api/v1/search/stream``: each line must decode as a ``SearchStep`` (strictly, by
    the struct the document is made from), the stages must be ``ranked`` lines then one
    ``final`` or ``error``; the last line is handed on for the document's schema check."""
    import msgspec

    from api.search_schemas import SearchStep

    text = response.content.decode()  # type: ignore[attr-defined]
    if not text.endswith("\n"):
        raise ValueError("An NDJSON answer must end with a newline.")
    steps = [msgspec.json.decode(line, type=SearchStep) for line in text.splitlines()]
    stages = [s.stage for s in steps]
    if not stages or stages[-1] == "ranked" or any(s != "ranked" for s in stages[:-1]):
        raise ValueError(f"Expected 'ranked' steps, then one 'final' or 'error': {stages}.")
    return msgspec.json.decode(text.splitlines()[-1])
