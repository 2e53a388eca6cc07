"""engine.verification in the search: real photos, a cropped copy found and proven, records
kept with the points, damaged ones rebuilt."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

from engine.composition import Lookalike
from engine.search_request import SearchRequest

MakeLookalike = Callable[..., Lookalike]
PHOTOS = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea}


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _busy_page() -> bytes:
    """Noise with the coffee photo at 30 % of its width: a design on a busy page."""
    page = Image.fromarray(np.random.default_rng(5).integers(0, 255, (900, 1500, 3), np.uint8))
    page.paste(Image.fromarray(data.coffee()).resize((450, 300)), (900, 500))
    return _jpeg(page)


@pytest.fixture
def lk(make_lookalike: MakeLookalike) -> Lookalike:
    lk = make_lookalike()
    for name, load in PHOTOS.items():
        (lk.settings.library_dir / f"{name}.jpg").write_bytes(_jpeg(Image.fromarray(load())))
    lk.indexing.index()
    return lk


def _id(lk: Lookalike, filename: str) -> str:
    return next(r.id for r in lk.store.scroll() if r.payload["paths"] == [filename])


def test_a_cropped_copy_is_found_and_proven(lk: Lookalike) -> None:
    ids = {r.id for r in lk.store.scroll()}
    assert all(lk.verification.records.get(i) is not None for i in ids)  # kept at index time
    astronaut = Image.fromarray(data.astronaut())
    box = (100, 20, 380, 400)  # x0, y0, x1, y1: the face and helmet, 55 % of the width
    query = _jpeg(astronaut.crop(box).rotate(4, expand=True), quality=40)

    result = lk.search.run(SearchRequest(image=query, k=3))
    top = result.hits[0]
    assert top.path == "astronaut.jpg" and top.verified is not None
    assert top.verified.inliers >= 20 and top.verified.confidence > 0.5
    assert top.verified.sentence().endswith("same layout: a copy")
    assert top.fused is not None and top.score >= top.fused  # moved up by the evidence
    # The region in the library image is where the crop came from: the query's outline
    # (the rotated crop, with the corners rotating added) around the box, centred on it.
    # (Its area centroid: clipping at the image's edge adds vertices, which would pull a
    # plain mean of the vertices aside.)
    poly = np.asarray(top.verified.hit_polygon)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    x, y = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    signed = cross.sum() / 2
    centroid = (((x + x1) * cross).sum() / (6 * signed), ((y + y1) * cross).sum() / (6 * signed))
    assert np.abs(np.asarray(centroid) - centre).max() < 15
    area = abs(signed)
    assert 1.0 <= area / ((box[2] - box[0]) * (box[3] - box[1])) < 1.3
    assert all(h.verified is None for h in result.hits[1:])  # other photos prove nothing
    assert {"keypoints_ms", "verify_ms"} <= set(result.timings)


def test_a_region_of_the_query_maps_back_to_the_upload(lk: Lookalike) -> None:
    # A catalogue page: the coffee photo pasted at a third of its width into noise.
    page = Image.fromarray(np.random.default_rng(1).integers(0, 255, (900, 1200, 3), np.uint8))
    coffee = Image.fromarray(data.coffee())
    page.paste(coffee, (600, 300))
    result = lk.search.run(SearchRequest(image=_jpeg(page), box=(500, 200, 700, 600), k=3))
    top = result.hits[0]
    assert top.path == "coffee.jpg" and top.verified is not None
    xs = [x for x, _ in top.verified.query_polygon]
    ys = [y for _, y in top.verified.query_polygon]
    # In the page's pixels: the pasted photo starts at (600, 300), the box at (500, 200).
    assert abs(min(xs) - 600) < 25 and abs(min(ys) - 300) < 25


def test_records_follow_the_points_and_are_rebuilt(lk: Lookalike) -> None:
    records = lk.verification.records
    coffee, chelsea = _id(lk, "coffee.jpg"), _id(lk, "chelsea.jpg")
    lk.library.delete(chelsea)
    assert not records.has(chelsea)  # gone with its point

    records.path(coffee).write_bytes(b"LKKP not a record")  # damaged on disk
    query = _jpeg(Image.fromarray(data.coffee()).crop((100, 50, 500, 350)))
    hits = lk.search.run(SearchRequest(image=query, k=2)).hits
    assert hits[0].id == coffee and hits[0].verified is None  # no evidence this time ...
    deadline = time.monotonic() + 30
    while records.get(coffee) is None and time.monotonic() < deadline:
        time.sleep(0.05)  # ... and rebuilt in the background
    assert lk.search.run(SearchRequest(image=query, k=2)).hits[0].verified is not None

    records.path(coffee).unlink()
    orphan = str(uuid.uuid4())
    records.put(orphan, "sift4", 10, 10, np.zeros((0, 2)), np.zeros((0, 64), np.uint8))
    report = lk.reconcile.run()
    assert report["keypoints_rebuilt"] == 1 and report["keypoints_dropped"] == 1
    assert records.get(coffee) is not None and not records.has(orphan)


def test_verification_off_keeps_no_records(make_lookalike: MakeLookalike, tmp_path: Path) -> None:
    lk = make_lookalike(verify=False)
    (lk.settings.library_dir / "coffee.jpg").write_bytes(_jpeg(Image.fromarray(data.coffee())))
    lk.indexing.index()
    assert not (tmp_path / "data" / "keypoints").exists()
    hits = lk.search.run(SearchRequest(image=_jpeg(Image.fromarray(data.coffee())))).hits
    assert hits[0].verified is None


def test_duplicates_tell_true_copies_from_look_alikes(lk: Lookalike) -> None:
    from PIL import ImageEnhance

    astronaut = Image.fromarray(data.astronaut())
    copy = ImageEnhance.Color(astronaut.crop((30, 30, 480, 480))).enhance(1.6)
    (lk.settings.library_dir / "astronaut-edit.jpg").write_bytes(_jpeg(copy, quality=60))
    palette = np.asarray([[200, 40, 40], [30, 90, 200], [240, 220, 60]], np.uint8)
    shares = {1: [0.6, 0.3, 0.1], 2: [0.35, 0.35, 0.3]}
    for seed in (1, 2):  # the same three colours, other layouts and shares: look-alikes
        rng = np.random.default_rng(seed)
        blocks = palette[rng.choice(3, (12, 16), p=shares[seed])]
        tiles = Image.fromarray(blocks).resize((480, 360), Image.Resampling.NEAREST)
        (lk.settings.library_dir / f"tiles{seed}.png").write_bytes(_png(tiles))
    lk.indexing.index()
    groups = lk.duplicate_review.report(threshold=0.5).groups
    kinds = {frozenset(m.paths[0] for m in g.group.members): g.kind for g in groups}
    assert kinds[frozenset({"astronaut.jpg", "astronaut-edit.jpg"})] == "copy"
    assert kinds[frozenset({"tiles1.png", "tiles2.png"})] == "similar"


def test_the_contact_sheet_and_the_csv_carry_the_proof(lk: Lookalike) -> None:
    from engine.contact_sheet import render_pdf, search_sheet

    query = _jpeg(Image.fromarray(data.coffee()).crop((100, 50, 500, 350)))
    result = lk.search.run(SearchRequest(image=query, k=3))
    sheet = search_sheet(result, "query.jpg", lk.thumbnails.path)
    pdf = render_pdf(sheet, compress=False)
    proof = result.hits[0].verified
    assert proof is not None
    assert proof.sentence().encode() in pdf


def test_look_inside_finds_a_design_on_a_busy_page(lk: Lookalike) -> None:
    from engine.errors import BadInput

    rng = np.random.default_rng(5)
    page = Image.fromarray(rng.integers(0, 255, (900, 1500, 3), np.uint8))
    page.paste(Image.fromarray(data.chelsea()).resize((300, 200)), (150, 120))  # a decoy
    page.paste(Image.fromarray(data.coffee()).resize((450, 300)), (900, 500))  # 30 % wide
    query = _jpeg(page)
    lk.verification.candidates = 1  # verification alone cannot reach what ranks last
    plain = lk.search.run(SearchRequest(image=query, k=3, inside=False))
    inside = lk.search.run(SearchRequest(image=query, k=3, inside=True))
    auto = lk.search.run(SearchRequest(image=query, k=3))  # the default: LOOKALIKE_INSIDE=auto
    # As a whole, the page is mostly noise: the design is not first and, checked only as
    # the first candidate, not proven.
    assert plain.hits[0].path != "coffee.jpg" and all(h.verified is None for h in plain.hits)
    assert "inside_embed_ms" not in plain.timings
    for found in (inside, auto):  # auto looks inside: the whole picture proved nothing
        assert found.hits[0].path == "coffee.jpg" and found.hits[0].verified is not None
        assert found.timings["inside_embed_ms"] > 0
    # A picture whose whole proves a copy is not looked inside by default.
    whole = lk.search.run(SearchRequest(image=_jpeg(Image.fromarray(data.coffee())), k=3))
    assert whole.hits[0].verified is not None and "inside_embed_ms" not in whole.timings
    tiny = _jpeg(Image.fromarray(data.coffee()).resize((120, 80)))
    with pytest.raises(BadInput, match="at least 128 pixels"):
        lk.search.run(SearchRequest(image=tiny, inside=True))
    with pytest.raises(BadInput, match="one picture"):
        lk.search.run(SearchRequest(text="a cup", inside=True))


def test_a_thumbnail_too_small_for_keypoints_is_recognised_by_its_layout(
    lk: Lookalike,
) -> None:
    """A 40 px blurred thumbnail keeps too few local features to prove anything; its
    layout still matches one library image, clearly apart from the others: "likely a
    copy", ranked first, never called a proof."""
    small = Image.fromarray(data.chelsea())
    small.thumbnail((40, 40))
    small = small.filter(ImageFilter.GaussianBlur(1.0))
    result = lk.search.run(SearchRequest(image=_png(small), k=3))
    top = result.hits[0]
    assert top.path == "chelsea.jpg" and top.verified is not None
    assert top.verified.method == "thumbnail" and top.verified.inliers == 0
    assert top.verified.confidence < 0.5 and top.verified.sentence().endswith("likely a copy")
    assert top.verified.query_polygon == [(0, 0), (40, 0), (40, 27), (0, 27)]
    assert top.verified.hit_polygon == [(0, 0), (451, 0), (451, 300), (0, 300)]
    assert top.fused is not None and top.score > top.fused
    assert all(h.verified is None for h in result.hits[1:])


def test_auto_looks_inside_a_page_whose_background_is_a_library_image(lk: Lookalike) -> None:
    """The page's background (the astronaut photo) is a proven copy, but not the whole
    picture: a design beside it (coffee, half the width) is still found by default."""
    page = Image.fromarray(data.astronaut()).resize((1200, 900))
    page.paste(Image.fromarray(data.coffee()).resize((600, 400)), (560, 460))
    lk.verification.candidates = 1  # as a whole, only the background is checked
    result = lk.search.run(SearchRequest(image=_jpeg(page), k=3))
    assert result.timings["inside_embed_ms"] > 0
    proven = {h.path for h in result.hits if h.verified is not None}
    assert proven == {"astronaut.jpg", "coffee.jpg"}


def test_auto_stands_back_while_another_picture_search_runs(lk: Lookalike) -> None:
    """Under concurrent load a default search answers from the whole picture; asking for
    'look inside' still looks."""
    query = _busy_page()
    pictures = lk.search._pictures
    with pictures._lock:
        pictures._running += 1  # another search is under way
    try:
        busy = lk.search.run(SearchRequest(image=query, k=3))
        forced = lk.search.run(SearchRequest(image=query, k=3, inside=True))
    finally:
        with pictures._lock:
            pictures._running -= 1
    assert "inside_embed_ms" not in busy.timings and "inside_embed_ms" in forced.timings
    assert pictures._running == 0


def test_first_look_is_the_whole_pictures_ranking_before_verification(lk: Lookalike) -> None:
    """``first_look`` is told the ranking by the vectors (what the answer would be with
    verification off, nothing proven yet), then the answer comes verified, looked inside."""
    query = _busy_page()
    lk.verification.candidates = 1
    told: list = []
    answer = lk.search.run(SearchRequest(image=query, k=3, inside=True), first_look=told.append)
    plain = lk.search.run(SearchRequest(image=query, k=3, inside=False))
    (first,) = told
    assert [h.id for h in first.hits] == [h.id for h in plain.hits]  # the same ranking
    assert first.hits[0].path != "coffee.jpg" and all(h.verified is None for h in first.hits)
    assert "verify_ms" not in first.timings and "inside_embed_ms" not in first.timings
    assert answer.hits[0].path == "coffee.jpg" and answer.hits[0].verified is not None
    # A threshold holds for the first look as for the answer.
    cut = sorted(h.score for h in first.hits)[1]
    told.clear()
    lk.search.run(SearchRequest(image=query, k=3, threshold=cut), first_look=told.append)
    assert told and all(h.score >= cut for h in told[0].hits) and len(told[0].hits) == 2
    # Nothing follows a search by a stored image's vectors: no first look, only the answer.
    told.clear()
    lk.search.run(SearchRequest(image_id=_id(lk, "coffee.jpg"), k=3), first_look=told.append)
    assert told == []


def test_without_verification_a_first_look_comes_only_before_looking_inside(
    make_lookalike: MakeLookalike,
) -> None:
    off = make_lookalike(verify=False)
    (off.settings.library_dir / "coffee.jpg").write_bytes(_jpeg(Image.fromarray(data.coffee())))
    off.indexing.index()
    query = _busy_page()
    told: list = []
    off.search.run(SearchRequest(image=query, k=3, inside=False), first_look=told.append)
    assert told == []
    found = off.search.run(SearchRequest(image=query, k=3, inside=True), first_look=told.append)
    assert len(told) == 1 and "inside_embed_ms" not in told[0].timings
    assert "inside_embed_ms" in found.timings and found.hits[0].path == "coffee.jpg"
