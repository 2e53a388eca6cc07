"""Validator output turned into sentences a designer understands.

msgspec and Litestar explain a refused request to a programmer ("Expected `float` <= 200,
got 500 - at `$.filters.colour_tolerance`"). The UI shows an error's ``detail`` as it is,
next to the control that caused it, so the detail must read as a sentence about that
control: "Colour tolerance (ΔE) must be at most 200; got 500."
"""

from __future__ import annotations

import re

# What each field is called on the page (and in the API docs).
FIELD_NAMES = {
    "k": "The number of results (k)",
    "threshold": "The threshold",
    "weights": "The weights",
    "box": "The crop box",
    "text": "The text",
    "image_id": "The image id",
    "tags": "The tags",
    "folder": "The folder",
    "filters": "The filters",
    "filters.colour": "Colour",
    "filters.colour_tolerance": "The colour tolerance (ΔE)",
    "filters.min_width": "The minimum width",
    "filters.max_width": "The maximum width",
    "filters.min_height": "The minimum height",
    "filters.max_height": "The maximum height",
    "filters.folders": "The folders",
    "filters.tags_any": "The tags",
    "filters.tags_all": "The tags",
    "filters.formats": "The formats",
}
_TYPES = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "empty",
}
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]+)`(?: (?P<op>[<>]=?) (?P<bound>[-\d.e]+))?")
_GOT = re.compile(r", got `?(?P<got>[^`]*)`?$")
_LENGTH = re.compile(r"length (?P<op>[<>]=?) (?P<bound>\d+)")


def field_label(path: str) -> str:
    """'$.filters[0].colour' -> 'Colour'; unknown fields keep their name."""
    clean = re.sub(r"\[\d+\]", "", path).lstrip(".")
    return FIELD_NAMES.get(clean) or f"The field '{clean}'" if clean else "The request"


def validation_sentence(message: str) -> str:
    """One msgspec message -> one sentence, ending with a full stop."""
    m = _AT.match(message.strip())
    what, path = (m.group("what"), m.group("path") or "") if m else (message, "")
    label = field_label(path)
    unknown = re.match(r"Object contains unknown field `(?P<name>[^`]+)`", what)
    if unknown:
        where = f" in {label.lower()}" if path else ""
        return f"'{unknown.group('name')}' is not something this request takes{where}."
    missing = re.match(r"Object missing required field `(?P<name>[^`]+)`", what)
    if missing:
        return f"{field_label(f'{path}.{missing.group(1)}')} is missing."
    got = _GOT.search(what)
    shown = _TYPES.get(got.group("got"), got.group("got")) if got else ""
    tail = f"; got {shown}" if shown else ""
    expected = _EXPECTED.match(what)
    length = _LENGTH.search(what)
    if expected and expected.group("op"):
        limit = "at least" if expected.group("op").startswith(">") else "at most"
        if expected.group("op") in ("<", ">"):
            limit = "more than" if expected.group("op") == ">" else "less than"
        return f"{label} must be {limit} {expected.group('bound')}{tail}."
    if length:
        limit = "at least" if length.group("op").startswith(">") else "at most"
        return f"{label} must have {limit} {length.group('bound')} characters or items{tail}."
    if expected:
        kinds = [_TYPES.get(t.strip(), t.strip()) for t in expected.group("type").split("|")]
        return f"{label} must be {' or '.join(dict.fromkeys(kinds))}{tail}."
    if "matching regex" in what:
        return f"{label} is not in the expected form{tail}."
    return f"{label} is not valid: {what.rstrip('.')}."
