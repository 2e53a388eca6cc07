"""Refused settings as sentences: pydantic explains them to a programmer ("1 validation
error for Settings port Input should be less than or equal to 65535 [type=...]"); an
operator needs the variable to change and what it accepts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

ENV_PREFIX = "LOOKALIKE_"
# pydantic's phrasing -> ours; the rest of its message (the bound, the choices) stays.
_PHRASES = (
    (re.compile(r"^Input should be greater than or equal to "), "must be at least "),
    (re.compile(r"^Input should be less than or equal to "), "must be at most "),
    (re.compile(r"^Input should be greater than "), "must be more than "),
    (re.compile(r"^Input should be less than "), "must be less than "),
    (re.compile(r"^Input should be a valid integer.*"), "must be a whole number"),
    (re.compile(r"^Input should be a valid number.*"), "must be a number"),
    (re.compile(r"^Input should be a valid boolean.*"), "must be true or false"),
    (re.compile(r"^Input should be "), "must be "),
    (re.compile(r"^Value error, "), ""),
)


def settings_sentence(errors: Sequence[Mapping[str, Any]]) -> str:
    """``ValidationError.errors()`` of the Settings -> one sentence per refused setting."""
    parts = []
    for error in errors:
        loc = [str(part) for part in error.get("loc") or () if str(part)]
        message = str(error.get("msg") or "is not valid")
        for pattern, replacement in _PHRASES:
            message, n = pattern.subn(replacement, message, count=1)
            if n:
                break
        if not loc:  # a rule across settings: its message names them already
            parts.append(_sentence(message))
            continue
        name = ENV_PREFIX + loc[0].upper()
        shown = error.get("input")
        secret = any(word in loc[0] for word in ("password", "key", "secret", "token"))
        got = f"; got {shown!r}" if isinstance(shown, str | int | float) and not secret else ""
        parts.append(_sentence(f"{name} {message}{got}"))
    return "Invalid settings: " + " ".join(parts) if parts else "Invalid settings."


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else f"{text}."
