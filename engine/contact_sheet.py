"""Contact sheets: a result page or a duplicate group as a PDF or PNG that a studio sends to a
client or a lawyer. Thumbnails, scores and the reason for each (per-model similarity), the
near-duplicate verdict, every path, and what produced them (models, weights, calibration,
when).

PDF through reportlab, so the paths are real text (searchable, copyable); PNG through Pillow.
Both take a ``Sheet``, which the use cases build from their own results.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from PIL import Image, ImageDraw, ImageFont

from engine.errors import BadInput

if TYPE_CHECKING:
    from engine.duplicates import Group
    from engine.results import SearchResult

SheetFormat = Literal["pdf", "png"]
FORMATS: tuple[str, ...] = ("pdf", "png")
MEDIA_TYPES = {"pdf": "application/pdf", "png": "image/png"}
MAX_ITEMS = 200
COLUMNS = 4
THUMB_PX = 256  # the thumbnails' size (engine.thumbnails)


@dataclass
class SheetItem:
    image: Image.Image | Path  # a thumbnail
    title: str
    lines: list[str] = field(default_factory=list)  # score, why, verdict
    paths: list[str] = field(default_factory=list)


@dataclass
class Sheet:
    title: str
    facts: list[str]  # what produced it: query, models, weights, calibration, when
    items: list[SheetItem]
    query: SheetItem | None = None


def search_sheet(
    result: SearchResult,
    query_label: str,
    thumbnail: Callable[[str], Path],
    query_image: Image.Image | None = None,
    calibration: str = "",
) -> Sheet:
    """A result page: the query, then each hit with its scores and paths."""
    items = [
        SheetItem(
            image=thumbnail(h.id),
            title=str(h.payload.get("filename") or Path(h.path).name or h.id),
            lines=[
                f"{_pct(h.score)} match" + ("  ·  near duplicate" if h.near_duplicate else ""),
                "  ".join(f"{role} {_pct(s)}" for role, s in sorted(h.scores.items())),
                *(
                    [f"matched query image {h.query_index + 1}"]
                    if h.query_index is not None
                    else []
                ),
                *([h.verified.sentence()] if h.verified is not None else []),
            ],
            paths=list(h.payload.get("paths") or [h.path]),
        )
        for h in result.hits[:MAX_ITEMS]
    ]
    weights = ", ".join(f"{r}={w:g}" for r, w in result.weights.items())
    models = ", ".join(f"{r}: {n}" for r, n in result.models.items())
    facts = [f"Query: {query_label}", f"Models: {models}", f"Weights: {weights}"]
    if calibration:
        facts.append(f"Near-duplicate threshold from {calibration}")
    facts.append(f"Made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by Lookalike")
    query = SheetItem(image=query_image, title=query_label) if query_image is not None else None
    return Sheet(title="Lookalike: search results", facts=facts, items=items, query=query)


def query_picture(image: bytes | None, name: str) -> Image.Image | None:
    """The uploaded query image, decoded for the sheet's first cell (None without one)."""
    if image is None:
        return None
    from embedder.decode import decode_image

    return decode_image(image, name).image


def group_sheet(group: Group, thumbnail: Callable[[str], Path], threshold: float) -> Sheet:
    """One duplicate group: its members, each with its best score in the group."""
    items = [
        SheetItem(
            image=thumbnail(m.id),
            title=str(m.payload.get("filename") or (m.paths[0] if m.paths else m.id)),
            lines=[f"best pair {_pct(m.score)}"],
            paths=list(m.paths),
        )
        for m in group.members[:MAX_ITEMS]
    ]
    facts = [
        f"{len(group.members)} images, {group.size} files; best pair {_pct(group.score)}",
        f"Grouped at a fused score of {threshold:.3f} or more",
        f"Made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by Lookalike",
    ]
    return Sheet(title="Lookalike: duplicate group", facts=facts, items=items)


def render(sheet: Sheet, fmt: str) -> bytes:
    if fmt == "pdf":
        return render_pdf(sheet)
    if fmt == "png":
        return render_png(sheet)
    raise BadInput(f"A contact sheet is a PDF or a PNG ('pdf' or 'png'); got {fmt!r}.")


def _pct(score: float) -> str:
    return f"{max(0.0, min(1.0, float(score))) * 100:.1f} %"


def _open(image: Image.Image | Path) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    with Image.open(image) as im:
        return im.convert("RGB")


# -- PDF ----------------------------------------------------------------------------------------
def render_pdf(sheet: Sheet, *, compress: bool = True) -> bytes:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    width, height = landscape(A4)
    pdf = canvas.Canvas(buf, pagesize=(width, height), pageCompression=int(compress))
    pdf.setTitle(sheet.title)
    pdf.setCreator("Lookalike")
    margin, cell_w, cell_h, thumb = 36.0, (width - 72) / COLUMNS, 250.0, 150.0
    entries = ([sheet.query] if sheet.query is not None else []) + sheet.items
    per_page = COLUMNS * 2
    pages = max(1, -(-len(entries) // per_page))
    for page in range(pages):
        y_top = height - margin
        pdf.setFont("Helvetica-Bold", 14)
        pdf.drawString(margin, y_top - 14, sheet.title)
        pdf.setFont("Helvetica", 8)
        for i, fact in enumerate(sheet.facts):
            pdf.drawString(margin, y_top - 30 - 10 * i, fact)
        grid_top = y_top - 40 - 10 * len(sheet.facts)
        for slot, entry in enumerate(entries[page * per_page : (page + 1) * per_page]):
            col, row = slot % COLUMNS, slot // COLUMNS
            x = margin + col * cell_w
            y = grid_top - row * cell_h
            img = _open(entry.image)
            scale = min(thumb / img.width, thumb / img.height)
            w, h = img.width * scale, img.height * scale
            pdf.drawImage(ImageReader(img), x, y - h, w, h)
            is_query = entry is sheet.query
            lines = (["QUERY"] if is_query else []) + [entry.title, *entry.lines]
            text_y = y - thumb - 12
            for n, line in enumerate(lines):
                pdf.setFont("Helvetica-Bold" if n == 0 else "Helvetica", 8)
                pdf.drawString(x, text_y - 10 * n, _fit(line, 48))
            pdf.setFont("Helvetica", 6.5)
            for n, path in enumerate(entry.paths[:4]):
                pdf.drawString(x, text_y - 10 * len(lines) - 8 * n, _fit(path, 64))
        pdf.setFont("Helvetica", 7)
        pdf.drawRightString(width - margin, margin / 2, f"page {page + 1} of {pages}")
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else "…" + text[-(chars - 1) :]


# -- PNG ----------------------------------------------------------------------------------------
def render_png(sheet: Sheet) -> bytes:
    entries = ([sheet.query] if sheet.query is not None else []) + sheet.items
    cell_w, text_h, pad = THUMB_PX + 24, 118, 24
    header = 48 + 17 * len(sheet.facts)
    rows = max(1, -(-len(entries) // COLUMNS))
    canvas = Image.new(
        "RGB", (pad * 2 + COLUMNS * cell_w, header + rows * (THUMB_PX + text_h) + pad), "white"
    )
    draw = ImageDraw.Draw(canvas)
    heading, name, body, small = _font(22), _font(15), _font(13), _font(11)
    draw.text((pad, pad / 2), sheet.title, fill="black", font=heading)
    for i, fact in enumerate(sheet.facts):
        draw.text((pad, pad / 2 + 34 + 17 * i), fact, fill="#333333", font=small)
    for slot, entry in enumerate(entries):
        x = pad + (slot % COLUMNS) * cell_w
        y = header + (slot // COLUMNS) * (THUMB_PX + text_h)
        img = _open(entry.image).copy()
        img.thumbnail((THUMB_PX, THUMB_PX))
        canvas.paste(img, (x, y))
        styled = [(name, 15, entry.title), *((body, 13, line) for line in entry.lines)]
        if entry is sheet.query:
            styled.insert(0, (small, 11, "QUERY"))
        styled += [(small, 11, path) for path in entry.paths[:2]]
        ty = y + THUMB_PX + 8
        for font, size, line in styled:
            draw.text(
                (x, ty), _fit(line, 42), fill="#555555" if font is small else "black", font=font
            )
            ty += size + 5
    buf = io.BytesIO()
    canvas.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInput(f"A contact sheet is a PDF or a PNG ('pdf' or 'png'); got {fmt!r}.")
    return fmt
