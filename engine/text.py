"""Text search: a sentence, embedded by CLIP's text encoder, against the images' CLIP block.

Only CLIP puts text and images in one space, so a text query weighs the clip block alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.errors import BadInput, ModelUnavailable

if TYPE_CHECKING:
    from engine.core import Engine

MAX_TEXT = 1000  # CLIP reads 77 tokens anyway; longer input is a mistake, not a query
TEXT_WEIGHTS = {"clip": 1.0}
NO_CLIP = (
    "Text search needs the CLIP model, which is off{why}. Set LOOKALIKE_CLIP_WEIGHTS to "
    "'openai' (or a ViT-B-32 checkpoint file) and restart to search by text."
)


def clip_status(engine: Engine) -> tuple[str | None, str]:
    """(the CLIP model's name or None, why it is off) without loading any model anew."""
    for model in engine.active_models():
        if model["role"] == "clip":
            return str(model["name"]), ""
    why = next((r.get("reason") for r in engine.model_roles() if r.get("role") == "clip"), None)
    return None, f" ({why})" if why else ""


def text_vectors(engine: Engine, text: str) -> dict[str, np.ndarray]:
    """The query's vectors for ``Engine.search_vectors``: {clip model name: (512,)}."""
    from embedder.errors import ModelLoadError

    text = (text or "").strip()
    if not text:
        raise BadInput("The text to search for is empty: describe the image you look for.")
    if len(text) > MAX_TEXT:
        raise BadInput(f"The text is {len(text)} characters long; at most {MAX_TEXT} are read.")
    name, why = clip_status(engine)
    if name is None:
        raise ModelUnavailable(NO_CLIP.format(why=why))
    try:
        vector = engine.embedder.embed_text([text])[0]
    except ModelLoadError as exc:
        raise ModelUnavailable(NO_CLIP.format(why=f" ({exc})")) from exc
    return {name: np.asarray(vector, dtype=np.float32)}
