"""Validator output turned into sentences a designer understands.

msgspec and Litestar explain a refused request to a programmer ("Expected `float` <= 200,
got 500 - at `$.filters.colour_tolerance`"). The UI shows an error's ``detail`` as it is,
next to the control that caused it, so the detail must read as a sentence about that
control: "The colour tolerance (ΔE) must be a number, at most 200; got 500."
"""

from __future__ import annotations

import re

# What each field is called on the page (and in the API docs).
FIELD_NAMES = {
    "k": "The number of results (k)",
    "threshold": "The threshold",
    "weights": "The weights",
    "box": "The crop box",
    "boxes": "The crop boxes",
    "text": "The text",
    "image_id": "The image id",
    "image_ids": "The image ids",
    "liked": "The liked images",
    "disliked": "The disliked images",
    "tags": "The tags",
    "tag": "The tag",
    "folder": "The folder",
    "files": "The files",
    "limit": "The page size (limit)",
    "offset": "The offset",
    "format": "The format",
    "filters": "The filters",
    "weights.clip": "The weight for meaning (clip)",
    "weights.cnn": "The weight for shape (cnn)",
    "weights.hsv": "The weight for colour (hsv)",
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
# What a field that must match a pattern has to look like (said instead of the pattern).
FORMS = {
    "text": "at least one word, not only spaces",
    "image_id": "a UUID, like 1b4e28ba-2fa1-41d2-883f-0016d3cca427",
    "image_ids": "image ids (UUIDs, like 1b4e28ba-2fa1-41d2-883f-0016d3cca427)",
    "liked": "image ids (UUIDs)",
    "disliked": "image ids (UUIDs)",
    "filters.colour": "a colour written as '#rrggbb' or '#rgb', like '#c0ffee'",
    "tags": "1 to 64 characters each, with no comma, line break or other control character",
    "tag": "1 to 64 characters, with no comma, line break or other control character",
    "filters.tags_any": "1 to 64 characters each, with no comma or control character",
    "filters.tags_all": "1 to 64 characters each, with no comma or control character",
    "folder": "a folder of the library, with no control character",
    "filters.folders": "folders of the library, with no control character",
    "box": "four whole numbers: [x, y, width, height] in pixels",
    "boxes": "lists of four whole numbers: [x, y, width, height] in pixels",
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
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]+)`(?: (?P<op>[<>]=?) (?P<bound>[-\d.e+]+))?")
_GOT = re.compile(r", got `?(?P<got>[^`]*)`?$")
_LENGTH = re.compile(r"^Expected `(?P<type>\w+)` of length (?:(?P<op>[<>]=?) )?(?P<bound>\d+)")


def _clean(path: str) -> str:
    return re.sub(r"\[\d+\]", "", path).lstrip(".")


def field_label(path: str) -> str:
    """'$.filters[0].colour' -> 'Colour'; unknown fields keep their name."""
    clean = _clean(path)
    return FIELD_NAMES.get(clean) or f"The field '{clean}'" if clean else "The request"


def validation_sentence(message: str) -> str:
    """One msgspec message -> one sentence, ending with a full stop."""
    m = _AT.match(message.strip())
    what, path = (m.group("what"), m.group("path") or "") if m else (message, "")
    if "[...]" in path or (what.startswith("Number out of range") and not path):
        return "The request holds a number too large to read."
    label = field_label(path)
    unknown = re.match(r"Object contains unknown field `(?P<name>[^`]+)`", what)
    if unknown:
        where = f" in {label.lower()}" if path else ""
        return f"'{unknown.group('name')}' is not something this request takes{where}."
    missing = re.match(r"Object missing required field `(?P<name>[^`]+)`", what)
    if missing:
        name = missing.group("name")
        return f"The request is missing {field_label(f'{path}.{name}').lower()} ('{name}')."
    got = _GOT.search(what)
    shown = _TYPES.get(got.group("got"), got.group("got")) if got else ""
    tail = f"; got {shown}" if shown else ""
    if what.startswith("Number out of range"):
        return f"{label} is too large a number."
    if "matching regex" in what:
        form = FORMS.get(_clean(path))
        return f"{label} must be {form}{tail}." if form else f"{label} is not in the form expected."
    length = _LENGTH.match(what)
    if length:
        return _length_sentence(label, path, length, tail)
    expected = _EXPECTED.match(what)
    if expected and expected.group("op"):
        kind = _TYPES.get(expected.group("type"), "a number")
        op, bound = expected.group("op"), _number(expected.group("bound"))
        limit = {">=": "at least", "<=": "at most", ">": "more than", "<": "less than"}[op]
        return f"{label} must be {kind}, {limit} {bound}{tail}."
    if expected:
        kinds = [_TYPES.get(t.strip(), t.strip()) for t in expected.group("type").split("|")]
        return f"{label} must be {' or '.join(dict.fromkeys(kinds))}{tail}."
    return f"{label} is not valid: {what.rstrip('.')}."


def _length_sentence(label: str, path: str, length: re.Match[str], tail: str) -> str:
    unit = "characters" if length.group("type") == "str" else "items"
    op, bound = length.group("op"), int(length.group("bound"))
    form = FORMS.get(_clean(path))
    if op is None:
        return f"{label} must be {form}{tail}." if form else f"{label} must have {bound} {unit}."
    if op.startswith(">") and bound <= 1:
        return f"{label} must not be empty."
    limit = "at least" if op.startswith(">") else "at most"
    if unit == "characters" and re.search(r"\[\d+\]$", path):
        return f"Each of {label.lower()} must have {limit} {bound} {unit}."
    return f"{label} must have {limit} {bound} {unit}."


def _number(text: str) -> str:
    """'1.0' -> '1', '0.5' -> '0.5': bounds as people write them."""
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def parameter_sentence(key: str, message: str) -> str:
    """A refused path, query or body parameter (Litestar names it ``key``; ``data`` is the
    whole body) as the same sentence its JSON field gets."""
    where = "" if key in ("", "data", "body") else f".{key}" if key[0] != "[" else key
    return validation_sentence(f"{message} - at `${where}`" if where else message)
