"""embedder.metadata: keywords, title and description already inside image files."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image, PngImagePlugin

from embedder.decode import decode_image
from embedder.metadata import MAX_XMP_BYTES, read_metadata


def xmp(subjects: list[str], title: str = "", description: str = "") -> bytes:
    """An XMP packet as Lightroom and Bridge write it."""
    lis = "".join(f"<rdf:li>{s}</rdf:li>" for s in subjects)
    alt = lambda tag, text: (  # noqa: E731
        f'<dc:{tag}><rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt></dc:{tag}>'
        if text
        else ""
    )
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Description rdf:about="">'
        f"<dc:subject><rdf:Bag>{lis}</rdf:Bag></dc:subject>"
        f"{alt('title', title)}{alt('description', description)}"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def iptc_app13(keywords: list[str], title: str = "") -> bytes:
    """A JPEG APP13 segment holding IPTC-IIM records, as Photoshop writes it."""
    records = b"".join(
        b"\x1c\x02" + bytes([dataset]) + struct.pack(">H", len(v)) + v
        for dataset, v in [(25, k.encode()) for k in keywords] + [(5, title.encode())]
        if v
    )
    pad = records + (b"\0" if len(records) % 2 else b"")
    irb = b"8BIM" + struct.pack(">H", 0x0404) + b"\0\0" + struct.pack(">I", len(records)) + pad
    body = b"Photoshop 3.0\0" + irb
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def picture() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 40, 90))


def encode(fmt: str, packet: bytes | None = None, **kw: object) -> bytes:
    buf = io.BytesIO()
    img = picture()
    if packet is not None:
        if fmt == "PNG":
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", packet.decode())
            kw["pnginfo"] = info
        elif fmt == "TIFF":
            kw["tiffinfo"] = {700: packet}
        else:
            kw["xmp"] = packet
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_xmp_subjects_title_and_description(fmt: str) -> None:
    data = encode(fmt, xmp(["ring", "gold", "ring"], "Aurora", "Hand-set stones"))
    words = decode_image(data, f"x.{fmt.lower()}", metadata=True).metadata
    assert words.keywords == ("ring", "gold")
    assert (words.title, words.description) == ("Aurora", "Hand-set stones")
    assert words.payload() == {
        "keywords": ["ring", "gold"],
        "title": "Aurora",
        "description": "Hand-set stones",
    }


def test_iptc_keywords_in_a_jpeg() -> None:
    plain = encode("JPEG")
    data = plain[:2] + iptc_app13(["necklace", "pearl"], "Pearl drop") + plain[2:]
    words = decode_image(data, "x.jpg", metadata=True).metadata
    assert words.keywords == ("necklace", "pearl") and words.title == "Pearl drop"


def test_keywords_become_usable_tags() -> None:
    long_word = "x" * 200
    data = encode("PNG", xmp(["a, b; c", "  spaced   out ", "", long_word]))
    words = decode_image(data, "x.png", metadata=True).metadata
    assert words.keywords == ("a", "b", "c", "spaced out", "x" * 64)


def test_no_metadata_unless_asked() -> None:
    data = encode("PNG", xmp(["ring"]))
    assert decode_image(data, "x.png").metadata.keywords == ()


HOSTILE = {
    "not XML": b"<x:xmpmeta><rdf:RDF>never closed",
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<x>&lol2;</x>"
    ),
    "external entity": (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    ),
    "huge": xmp(["w" * 60] * (MAX_XMP_BYTES // 60 + 10)),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_metadata_is_ignored_and_the_image_kept(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = encode("PNG", HOSTILE[name])
    with caplog.at_level("INFO", logger="embedder.metadata"):
        decoded = decode_image(data, "hostile.png", metadata=True)
    assert decoded.image.size == (64, 48) and decoded.metadata.keywords == ()
    assert "XMP metadata ignored" in caplog.text


def test_read_metadata_of_an_image_without_any() -> None:
    assert read_metadata(picture()).payload() == {}
