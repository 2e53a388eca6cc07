"""The hostile-input corpus: every file is made here, from numpy noise and Pillow, and
nothing is downloaded.

``cases()`` lists each input with what a correct server does with it: index it (``legal``,
with the size and format the store must record) or refuse it with a 4xx and an error code.
``write_corpus(folder)`` lays the files out on disk (names as given, raw bytes included) for
``lookalike index``; ``python -m tests.hostile.corpus OUT`` does the same by hand.

Bad *requests* (wrong fields, malformed JSON, silly ``k``) are not files: they live in
``tests/integration/test_hostile_api.py``.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

BAD = "undecodable_image"


@dataclass(frozen=True)
class Case:
    name: str  # what the input is, for reports
    filename: str | bytes  # as uploaded and as written to disk (bytes: not valid UTF-8)
    data: bytes
    legal: bool  # True: must be indexed; False: must be refused
    size: tuple[int, int] | None = None  # (width, height) the payload must record, upright
    format: str | None = None  # Pillow format the payload must record
    code: str = BAD  # the error code when refused


def _noise(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(1, h // 16), max(1, w // 16), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    return img.convert(mode) if mode != "RGB" else img


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(width: int, height: int, depth: int, colour: int, raw: bytes) -> bytes:
    """A PNG written by hand, for what Pillow will not write (48-bit RGB, a bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(raw, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def _bomb_png(side: int = 30000) -> bytes:
    """A real, complete 1-bit PNG of side x side pixels (900 Mpx, 3.4 GB as RGB) that
    compresses to ~110 KB: every row is a filter byte and zeros."""
    row = b"\0" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(side)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _absurd_header_png() -> bytes:
    """A PNG header claiming 2^31-1 x 2^31-1 pixels, with a few bytes of data."""
    return _png(2**31 - 1, 2**31 - 1, 8, 2, b"\0" * 16)


def _absurd_header_jpeg() -> bytes:
    """A real small JPEG whose frame header is patched to claim 65500 x 65500."""
    data = bytearray(_save(_noise(64, 64, 7), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def _absurd_header_gif() -> bytes:
    data = bytearray(_save(_noise(8, 8, 3, "P"), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen size
    return bytes(data)


def _bad_crc_png() -> bytes:
    data = bytearray(_save(_noise(64, 64, 5), "PNG"))
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _png16_rgb(w: int = 48, h: int = 32) -> bytes:
    rng = np.random.default_rng(16)
    pixels = rng.integers(0, 65536, size=(h, w, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(h))
    return _png(w, h, 16, 2, raw)


def _palette_transparent() -> bytes:
    img = _noise(40, 30, 11).quantize(16)
    return _save(img, "PNG", transparency=0)


def _animated(fmt: str) -> bytes:
    frames = [_noise(64, 48, s) for s in range(4)]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)


def _exif_rotated() -> bytes:
    img = _noise(80, 40, 21)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: upright size is 40 x 80
    return _save(img, "JPEG", exif=exif.tobytes())


@cache
def big_photo() -> bytes:
    """A legitimate multi-megabyte JPEG (3000 x 2000, smooth picture plus sensor noise)."""
    rng = np.random.default_rng(42)
    base = np.asarray(_noise(3000, 2000, 42), dtype=np.int16)
    grain = rng.integers(-40, 41, size=base.shape, dtype=np.int16)
    img = Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))
    return _save(img, "JPEG", quality=95)


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
    b"<x>&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;</x>"
)


def _with_xmp(packet: bytes, fmt: str = "JPEG") -> bytes:
    """A good 64x48 image carrying this XMP packet, where each format keeps it."""
    img = _noise(64, 48, 21)
    if fmt == "PNG":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode("latin-1"))
        return _save(img, fmt, pnginfo=info)
    return _save(img, fmt, xmp=packet)


def _cut_iptc() -> bytes:
    """A JPEG whose Photoshop APP13 block claims more IPTC data than it holds."""
    jpeg = _save(_noise(64, 48, 22), "JPEG")
    records = b"\x1c\x02\x19" + struct.pack(">H", 500) + b"short"
    irb = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", 4000) + records
    body = b"Photoshop 3.0\x00" + irb
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


@cache
def cases() -> tuple[Case, ...]:
    jpeg = _save(_noise(256, 192, 1), "JPEG", quality=90)
    png = _save(_noise(256, 192, 2), "PNG")
    webp = _save(_noise(256, 192, 3), "WEBP", quality=90)
    gif = _save(_noise(32, 32, 4).quantize(8), "GIF")
    html = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b"<script>alert(1)</script><rect width='10' height='10'/></svg>"
    )
    return (
        # --- broken or mislabelled ----------------------------------------------------
        Case("zero-byte file", "empty.jpg", b"", False),
        Case("truncated JPEG", "truncated.jpg", _cut(jpeg), False),
        Case("truncated PNG", "truncated.png", _cut(png), False),
        Case("truncated WebP", "truncated.webp", _cut(webp), False),
        Case("PNG with a corrupt CRC", "badcrc.png", _bad_crc_png(), False),
        Case("PNG named .jpg", "really-a-png.jpg", png, True, (256, 192), "PNG"),
        Case("JPEG named .webp", "really-a-jpeg.webp", jpeg, True, (256, 192), "JPEG"),
        Case("text file named .jpg", "notes.jpg", b"just some notes\n" * 20, False),
        Case("HTML named .png", "page.png", html, False),
        Case("SVG with a script", "vector.svg", svg, False),
        Case("SVG named .png", "vector.png", svg, False),
        Case("HTML then PNG bytes", "html-first.png", html + png, False),
        # A valid GIF with HTML after its trailer: an image, served as image/gif + nosniff.
        Case("GIF/HTML polyglot", "polyglot.gif", gif + html, True, (32, 32), "GIF"),
        Case(
            "JPEG with junk after EOI",
            "trailer.jpg",
            jpeg + b"\0PK\x03\x04junk",
            True,
            (256, 192),
            "JPEG",
        ),
        # --- size attacks ---------------------------------------------------------------
        Case("decompression bomb PNG 30000x30000", "bomb.png", _bomb_png(), False),
        Case("PNG header claiming 2^31-1 square", "absurd.png", _absurd_header_png(), False),
        Case("JPEG header claiming 65500 square", "absurd.jpg", _absurd_header_jpeg(), False),
        Case("GIF header claiming 65535 square", "absurd.gif", _absurd_header_gif(), False),
        # --- hostile metadata on a good image: the metadata is ignored, the image kept ---
        Case(
            "JPEG with an XMP that is not XML",
            "xmp-junk.jpg",
            _with_xmp(b"<x:xmpmeta><a"),
            True,
            (64, 48),
            "JPEG",
        ),
        Case(
            "PNG with a billion-laughs XMP",
            "xmp-laughs.png",
            _with_xmp(_LAUGHS, "PNG"),
            True,
            (64, 48),
            "PNG",
        ),
        Case(
            "WebP with a 2 MB XMP",
            "xmp-huge.webp",
            _with_xmp(b"<x>" + b"a" * (2 << 20) + b"</x>", "WEBP"),
            True,
            (64, 48),
            "WEBP",
        ),
        Case(
            "JPEG with a truncated IPTC block", "iptc-cut.jpg", _cut_iptc(), True, (64, 48), "JPEG"
        ),
        # --- unusual but legal ---------------------------------------------------------
        Case(
            "CMYK JPEG",
            "cmyk.jpg",
            _save(_noise(64, 48, 8, "CMYK"), "JPEG"),
            True,
            (64, 48),
            "JPEG",
        ),
        Case(
            "16-bit greyscale PNG",
            "grey16.png",
            _save(
                Image.fromarray((np.arange(48 * 32, dtype=np.uint16) * 40).reshape(32, 48)), "PNG"
            ),
            True,
            (48, 32),
            "PNG",
        ),
        Case("16-bit RGB PNG", "rgb48.png", _png16_rgb(), True, (48, 32), "PNG"),
        Case(
            "palette PNG with transparency",
            "palette-alpha.png",
            _palette_transparent(),
            True,
            (40, 30),
            "PNG",
        ),
        Case(
            "greyscale+alpha PNG",
            "la.png",
            _save(_noise(30, 20, 9, "LA"), "PNG"),
            True,
            (30, 20),
            "PNG",
        ),
        Case("animated GIF", "animated.gif", _animated("GIF"), True, (64, 48), "GIF"),
        Case("animated WebP", "animated.webp", _animated("WEBP"), True, (64, 48), "WEBP"),
        Case("EXIF-rotated JPEG", "rotated.jpg", _exif_rotated(), True, (40, 80), "JPEG"),
        Case(
            "1x1 image",
            "one-pixel.png",
            _save(Image.new("RGB", (1, 1), "red"), "PNG"),
            True,
            (1, 1),
            "PNG",
        ),
        Case(
            "greyscale JPEG",
            "grey.jpg",
            _save(_noise(50, 40, 12, "L"), "JPEG"),
            True,
            (50, 40),
            "JPEG",
        ),
        Case(
            "progressive JPEG",
            "progressive.jpg",
            _save(_noise(120, 90, 13), "JPEG", progressive=True),
            True,
            (120, 90),
            "JPEG",
        ),
        Case(
            "interlaced PNG",
            "interlaced.png",
            _save(_noise(70, 50, 14), "PNG", interlace=1),
            True,
            (70, 50),
            "PNG",
        ),
        Case("BMP", "plain.bmp", _save(_noise(33, 17, 15), "BMP"), True, (33, 17), "BMP"),
        Case("TIFF", "plain.tiff", _save(_noise(33, 17, 16), "TIFF"), True, (33, 17), "TIFF"),
        Case("multi-megabyte photo", "big-photo.jpg", big_photo(), True, (3000, 2000), "JPEG"),
        # --- hostile names (legal content) ----------------------------------------------
        # Refused with a reason, not a crash: multipart names are UTF-8 (RFC 7578), and a
        # payload (JSON) cannot hold the name of such a file on disk.
        Case(
            "non-UTF-8 file name",
            b"caf\xe9-\xff.png",
            _save(_noise(20, 20, 17), "PNG"),
            False,
            code="bad_input",
        ),
        Case(
            "path traversal name",
            "../../etc/passwd.jpg",
            _save(_noise(20, 20, 18), "JPEG"),
            True,
            (20, 20),
            "JPEG",
        ),
        Case(
            "Windows traversal name",
            "..\\..\\windows\\win.ini.png",
            _save(_noise(20, 20, 19), "PNG"),
            True,
            (20, 20),
            "PNG",
        ),
        Case(
            "full-width traversal name",
            "．．／．．／etc／shadow.png",
            _save(_noise(20, 20, 20), "PNG"),
            True,
            (20, 20),
            "PNG",
        ),
        Case(
            "control characters in name",
            "a\r\nb\x00c\x1b[31m.png",
            _save(_noise(20, 20, 22), "PNG"),
            True,
            (20, 20),
            "PNG",
        ),
        Case(
            "right-to-left override name",
            "photo\u202egnp.exe.png",
            _save(_noise(20, 20, 23), "PNG"),
            True,
            (20, 20),
            "PNG",
        ),
        Case(
            "300-character name",
            "x" * 300 + ".png",
            _save(_noise(20, 20, 24), "PNG"),
            True,
            (20, 20),
            "PNG",
        ),
        Case("name of dots only", "....", _save(_noise(20, 20, 25), "PNG"), True, (20, 20), "PNG"),
    )


def disk_name(case: Case) -> bytes:
    """A name the file can have on disk: traversal and separators cannot be file names,
    so those cases keep their last component (the API test sends the full name)."""
    raw = case.filename if isinstance(case.filename, bytes) else os.fsencode(case.filename)
    raw = raw.replace(b"\\", b"/").rsplit(b"/", 1)[-1].replace(b"\0", b"_")
    if raw in (b"", b".", b".."):
        raw = b"dots"
    if len(raw) > 200:
        raw = raw[:196] + raw[-4:]  # most filesystems stop at 255 bytes
    if raw.startswith(b"."):
        raw = b"_" + raw  # the indexer skips hidden files on purpose
    if os.path.splitext(raw)[1].lower() not in {
        b".jpg",
        b".png",
        b".gif",
        b".webp",
        b".bmp",
        b".tiff",
        b".svg",
    }:
        raw += b".png"
    return raw


def write_corpus(folder: Path) -> dict[bytes, Case]:
    """Write every case under ``folder``; returns the cases by on-disk name (bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[bytes, Case] = {}
    for case in cases():
        name = disk_name(case)
        assert name not in written, name
        with open(os.path.join(os.fsencode(folder), name), "wb") as fh:
            fh.write(case.data)
        written[name] = case
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    for name, case in write_corpus(out).items():
        verdict = "legal" if case.legal else f"refused ({case.code})"
        print(f"{os.fsdecode(name)!r:48} {len(case.data):>9} bytes  {case.name}: {verdict}")
