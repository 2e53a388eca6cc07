"""decode_image on every accepted format and on the ways a file can be bad."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from embedder_test_helpers import encode, solid
from PIL import Image

from embedder.decode import DRAFT_MIN_SIDE, Decoded, decode_image, probe
from embedder.errors import DecodeError, EmbedderError

ORANGE = (240, 120, 20)


def close_to(pixel: tuple[int, ...], expected: tuple[int, ...], tol: int = 6) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected, strict=True))


def centre(decoded: Decoded) -> tuple[int, ...]:
    im = decoded.image
    return tuple(im.getpixel((im.width // 2, im.height // 2)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fmt", "params", "lossy"),
    [
        ("JPEG", {"quality": 95}, True),
        ("PNG", {}, False),
        ("WEBP", {"lossless": True}, False),
        ("GIF", {}, True),  # 256-colour palette: close, not exact
        ("BMP", {}, False),
        ("TIFF", {}, False),
    ],
)
def test_each_format_decodes_to_rgb(
    tmp_path: Path, fmt: str, params: dict[str, object], lossy: bool
) -> None:
    data = encode(solid(ORANGE, (80, 50)), fmt, **params)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    for source in (data, path):
        decoded = decode_image(source, "x")
        assert decoded.format == fmt
        assert (decoded.width, decoded.height) == (80, 50)
        assert decoded.image.mode == "RGB"
        assert decoded.image.size == (80, 50)
        assert close_to(centre(decoded), ORANGE, tol=12 if lossy else 0)


def test_gif_gives_its_first_frame() -> None:
    frames = [solid((255, 0, 0)), solid((0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_image(data, "anim.gif")
    assert close_to(centre(decoded), (255, 0, 0))


def test_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # full magenta + yellow = red
    decoded = decode_image(encode(cmyk, "JPEG", quality=95), "cmyk.jpg")
    assert decoded.image.mode == "RGB"
    assert close_to(centre(decoded), (255, 0, 0), tol=10)


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    ramp = np.linspace(0, 65535, 64 * 32).astype(np.uint16).reshape(32, 64)
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I;16")
    out = np.asarray(decode_image(encode(img, "PNG"), "deep.png").image)
    assert out.shape == (32, 64, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255
    assert 100 < out[16, 32, 0] < 155  # the middle stays mid-grey, not clipped to white
    assert (out[..., 0] == out[..., 1]).all()


def test_thirty_two_bit_integer_tiff() -> None:
    img = Image.fromarray(np.full((8, 8), 40000, dtype=np.int32), mode="I")
    out = np.asarray(decode_image(encode(img, "TIFF"), "i32.tif").image)
    assert abs(int(out[0, 0, 0]) - round(40000 / 257)) <= 1


def test_palette_transparency_is_composited_on_white() -> None:
    img = Image.new("P", (20, 10), 0)
    img.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    img.paste(1, (10, 0, 20, 10))  # right half: opaque red; left half: index 0, transparent
    decoded = decode_image(encode(img, "PNG", transparency=0), "p.png")
    assert decoded.image.getpixel((2, 5)) == (255, 255, 255)
    assert decoded.image.getpixel((15, 5)) == (200, 30, 30)


def test_alpha_is_composited_on_white() -> None:
    img = Image.new("RGBA", (10, 10), (255, 0, 0, 128))
    for fmt in ("PNG", "WEBP"):
        params = {"lossless": True} if fmt == "WEBP" else {}
        pixel = decode_image(encode(img, fmt, **params), "a").image.getpixel((5, 5))
        assert close_to(pixel, (255, 127, 127), tol=2)  # type: ignore[arg-type]
    la = Image.new("LA", (4, 4), (0, 0))  # fully transparent black
    assert decode_image(encode(la, "PNG"), "la.png").image.getpixel((1, 1)) == (255, 255, 255)


def test_exif_orientation_is_applied_and_sizes_swap() -> None:
    img = solid((10, 200, 10), (60, 20))
    img.paste((200, 10, 10), (0, 0, 10, 20))  # a red band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    data = encode(img, "JPEG", quality=95, exif=exif.tobytes())
    decoded = decode_image(data, "rotated.jpg")
    assert (decoded.width, decoded.height) == (20, 60)
    assert decoded.image.size == (20, 60)
    assert close_to(decoded.image.getpixel((10, 2)), (200, 10, 10), tol=30)  # type: ignore[arg-type]
    assert probe(data) == (20, 60, "JPEG")


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel(mode: str) -> None:
    img = Image.new(mode, (12, 9), 255)
    decoded = decode_image(encode(img, "PNG"), "grey.png")
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((3, 3)) == (255, 255, 255)


def test_one_pixel() -> None:
    decoded = decode_image(encode(solid((1, 2, 3), (1, 1)), "PNG"), "dot.png")
    assert (decoded.width, decoded.height) == (1, 1)
    assert decoded.image.getpixel((0, 0)) == (1, 2, 3)


def test_large_jpeg_uses_draft_but_reports_the_original_size() -> None:
    data = encode(solid(ORANGE, (3000, 2000)), "JPEG", quality=90)
    decoded = decode_image(data, "big.jpg")
    assert (decoded.width, decoded.height) == (3000, 2000)
    assert min(decoded.image.size) >= DRAFT_MIN_SIDE
    assert decoded.image.size[0] < 3000  # decoded at a reduced scale
    full = decode_image(data, "big.jpg", draft=False)
    assert full.image.size == (3000, 2000)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"just some text, not an image\n", "not a supported image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>', "not a supported"),
        (b"<!doctype html><html><body>404</body></html>", "not a supported image"),
    ],
)
def test_not_images(data: bytes, why: str) -> None:
    with pytest.raises(DecodeError, match=why) as err:
        decode_image(data, "upload.jpg")
    assert "upload.jpg" in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, EmbedderError)


def test_other_pillow_formats_are_refused() -> None:
    with pytest.raises(DecodeError, match="not a supported image"):
        decode_image(encode(solid(ORANGE), "PPM"), "x.ppm")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_raise_instead_of_decoding_partially(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(DecodeError, match="corrupt or truncated") as err:
        decode_image(data[: len(data) // 2], "cut." + fmt.lower())
    assert "cut." in str(err.value)


def test_files_empty_missing_and_misnamed(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        decode_image(empty)
    with pytest.raises(DecodeError, match="cannot be read"):
        decode_image(tmp_path / "missing.png")
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(DecodeError, match=r"notes\.jpg"):
        decode_image(text)


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Above the limit, where Pillow itself only warns.
        with pytest.raises(DecodeError, match=r"120 × 100 pixels, more than the 0\.01 megapixels"):
            decode_image(encode(Image.new("1", (120, 100)), "PNG"), "bomb.png")
        with pytest.raises(DecodeError, match="too large to decode safely"):
            probe(encode(Image.new("1", (120, 100)), "PNG"), "bomb.png")
        # Above twice the limit, where Pillow raises.
        with pytest.raises(DecodeError, match="too large") as refused:
            decode_image(encode(Image.new("1", (300, 300)), "PNG"), "bomb.png")
        assert "DOS" not in str(refused.value)  # Pillow's wording stays out of the sentence


def test_large_png_is_reduced_before_any_copy_and_keeps_its_orientation() -> None:
    img = solid(ORANGE, (3000, 1600))
    img.paste((10, 10, 200), (0, 0, 300, 1600))  # a blue band on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the band ends up on top
    data = encode(img, "PNG", exif=exif.tobytes())
    decoded = decode_image(data, "big.png")
    assert (decoded.width, decoded.height) == (1600, 3000)
    assert DRAFT_MIN_SIDE <= min(decoded.image.size) < 1600  # reduced by an integer factor
    assert decoded.image.size[1] > decoded.image.size[0]  # still upright
    assert close_to(decoded.image.getpixel((decoded.image.size[0] // 2, 2)), (10, 10, 200), 30)
    assert decode_image(data, "big.png", draft=False).image.size == (1600, 3000)


def test_a_lower_pixel_cap_refuses_before_decoding() -> None:
    data = encode(Image.new("1", (120, 100)), "PNG")
    assert decode_image(data, "ok.png", max_pixels=12_000).width == 120
    with pytest.raises(DecodeError, match=r"120 × 100 pixels, more than the 0\.012 megapixels"):
        decode_image(data, "q.png", max_pixels=11_999)
