"""Words already inside an image file: IPTC keywords, XMP ``dc:subject``, title and
description, for JPEG, TIFF, PNG and WebP.

Studios tag their files in Lightroom, Bridge or Photo Mechanic long before Lookalike sees
them; these words become tags and filters at index time. A file's metadata is someone
else's data: a malformed or oversized block is ignored with a log line, never the image.
XMP is XML, parsed with defusedxml (no entity expansion, no external entities).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

MAX_XMP_BYTES = 1 << 20  # a real XMP packet is a few KB; a megabyte is an attack or junk
MAX_KEYWORDS = 100
MAX_KEYWORD = 64  # the length a tag may have (engine.library.check_tag)
MAX_TEXT = 500

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_DC = "{http://purl.org/dc/elements/1.1/}"
# IPTC-IIM datasets (record 2): keywords, object name (title), caption/abstract.
_IPTC_KEYWORDS, _IPTC_TITLE, _IPTC_CAPTION = (2, 25), (2, 5), (2, 120)
_TIFF_XMP_TAG = 700


@dataclass(frozen=True)
class EmbeddedMetadata:
    keywords: tuple[str, ...] = ()
    title: str = ""
    description: str = ""

    def payload(self) -> dict[str, Any]:
        """The payload fields, only those that hold something."""
        out: dict[str, Any] = {}
        if self.keywords:
            out["keywords"] = list(self.keywords)
        if self.title:
            out["title"] = self.title
        if self.description:
            out["description"] = self.description
        return out


@dataclass
class _Found:
    keywords: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""


def read_metadata(im: Image.Image, label: str = "") -> EmbeddedMetadata:
    """The embedded words of an opened (not necessarily loaded) image; empty on any
    trouble, which is logged."""
    found = _Found()
    for source, reader in (("IPTC", _read_iptc), ("XMP", _read_xmp)):
        try:
            reader(im, found)
        except Exception as exc:
            log.info("%s: %s metadata ignored (%s: %s)", label, source, type(exc).__name__, exc)
    return EmbeddedMetadata(
        keywords=_clean_keywords(found.keywords),
        title=_clean_text(found.title),
        description=_clean_text(found.description),
    )


def _read_iptc(im: Image.Image, found: _Found) -> None:
    if im.format not in ("JPEG", "MPO", "TIFF"):
        return  # PNG and WebP carry IPTC, when at all, inside their XMP
    from PIL import ImageFile, IptcImagePlugin

    if not isinstance(im, ImageFile.ImageFile):
        return
    info = IptcImagePlugin.getiptcinfo(im) or {}
    found.keywords += [_text(v) for v in _values(info.get(_IPTC_KEYWORDS))]
    found.title = found.title or next(map(_text, _values(info.get(_IPTC_TITLE))), "")
    caption = next(map(_text, _values(info.get(_IPTC_CAPTION))), "")
    found.description = found.description or caption


def _read_xmp(im: Image.Image, found: _Found) -> None:
    packet = _xmp_packet(im)
    if not packet:
        return
    if len(packet) > MAX_XMP_BYTES:
        raise ValueError(f"the XMP packet is {len(packet)} bytes, more than {MAX_XMP_BYTES}")
    from defusedxml import ElementTree

    root = ElementTree.fromstring(packet.strip(b"\x00 \r\n\t"))
    for subject in root.iter(f"{_DC}subject"):
        found.keywords += [li.text or "" for li in subject.iter(f"{_RDF}li")]
    found.title = found.title or _first_alt(root, "title")
    found.description = found.description or _first_alt(root, "description")


def _xmp_packet(im: Image.Image) -> bytes:
    """The raw XMP of each format, where Pillow leaves it."""
    raw: Any = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if raw is None and im.format == "TIFF":
        raw = getattr(im, "tag_v2", {}).get(_TIFF_XMP_TAG)
    if isinstance(raw, str):
        return raw.encode("utf-8", "replace")
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    if isinstance(raw, tuple | list):  # libtiff may hand the tag over as a tuple of ints
        return bytes(int(b) & 0xFF for b in raw[: MAX_XMP_BYTES + 1])
    return b""


def _first_alt(root: Any, name: str) -> str:
    for element in root.iter(f"{_DC}{name}"):
        for li in element.iter(f"{_RDF}li"):
            if li.text:
                return str(li.text)
        if element.text and element.text.strip():
            return str(element.text)
    return ""


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")  # IPTC without a character-set record
    return str(value)


def _clean_keywords(words: list[str]) -> tuple[str, ...]:
    """Usable as tags: no commas or line breaks, at most 64 characters, no repeats."""
    out: dict[str, None] = {}
    for word in words:
        # Some tools write "a, b; c" into one keyword.
        for part in str(word).replace(";", ",").split(","):
            clean = " ".join(part.split())[:MAX_KEYWORD].strip()
            if clean:
                out.setdefault(clean, None)
    return tuple(out)[:MAX_KEYWORDS]


def _clean_text(text: str) -> str:
    return " ".join(str(text).split())[:MAX_TEXT]
