"""Time to the first result in Chromium for a ~3 MB phone photo (issue 16, item 5). Prints JSON.

``lookalike serve`` (bench/served.py) runs over a data directory holding N synthetic points of
the three seed models (random weights: the same compute), each with a keypoint record
(``served.write_keypoints``), with the server's defaults (copy verification, looking inside
a photo that has no copy); headless Chromium logs in, opens the
Search page and, ``--runs`` times per mode, sets the query file input to a 4000 x 3000 JPEG of
~3 MB. The clock starts at the input's ``change`` event (the user has chosen the photo) and
stops at the frame after the first result card enters the grid. The page asks for the search
in steps (``POST /api/v1/search/stream``): that first card is the ranking by the vectors,
shown while its best matches are verified; the answer (verified, the grid no longer
``aria-busy``) is timed too (``answer_*``). The modes run in the same page session,
interleaved so machine load drifts hit all alike:

- ``shrunk``: what the page does now (api/static/js/shrink.js: decode once, send <= 1280 px;
  the search in steps);
- ``whole_answer``: the same with ``localStorage["lookalike.steps"] = "off"``: one request to
  ``POST /api/v1/search``, nothing shown before the verified answer;
- ``original``: both off (``localStorage["lookalike.shrink"] = "off"`` too), which sends the
  file as it is, one answer (the page before issue 16).

Each mode runs unthrottled (loopback: upload costs almost nothing) and, with ``--uplink-mbps``,
behind Chromium's network emulation (a phone on Wi-Fi or 4G: upload and a round trip cost).
Reported per mode: median and p90 of time to first result and to the answer, the bytes of
the uploaded image, and the server's own decode and total times from the steps.

    python -m bench.browser_search [--n 100000] [--runs 10] [--uplink-mbps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import served

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "browser-bench-password"
RTT_MS = 30
PHASES = (
    "page_ms",
    "request_ms",
    "render_ms",
)  # with --uplink-mbps: a phone's round trip to a home server

# Before the page's own scripts: when the photo is chosen, when the first card is drawn, and
# how many bytes of image the search carried (the FormData's file, read without copying).
PROBE = r"""
window.__probe = {
  t0: null, sent: null, answered: null, t1: null, t2: null, bytes: null, text: null,
};
addEventListener("change", (e) => {
  if (e.target.id === "query-file") window.__probe.t0 = performance.now();
}, true);
const send = window.fetch;
window.fetch = (url, init) => {
  const search = /\/api\/v1\/search(\/stream)?$/.test(String(url));
  if (search && init && init.body instanceof FormData) {
    window.__probe.bytes = init.body.get("image").size;
    window.__probe.sent = performance.now();
    return send(url, init).then((response) => {
      window.__probe.answered = performance.now();
      // A copy of the steps: Chromium keeps no body of a response the page reads as a
      // stream (Playwright issue 42742).
      response.clone().text().then((text) => { window.__probe.text = text; });
      return response;
    });
  }
  return send(url, init);
};
const frame = (key) => requestAnimationFrame(() => setTimeout(() => {
  window.__probe[key] = performance.now();
}));
let first = false;
new MutationObserver((changes, observer) => {
  const grid = document.querySelector("#results-grid");
  if (!grid || !grid.querySelector("[data-testid=hit]")) return;
  if (!first) { first = true; frame("t1"); }
  if (grid.getAttribute("aria-busy") === "false") { observer.disconnect(); frame("t2"); }
}).observe(document, {subtree: true, childList: true, attributes: true});
"""


# The page's two switches (localStorage "lookalike.shrink" and "lookalike.steps") per mode.
MODES = {
    "shrunk": ("on", "on"),  # the page now
    "whole_answer": ("on", "off"),  # shrinks, but waits for the whole answer
    "original": ("off", "off"),  # the page before issue 16: the file as it is, one answer
}


def phone_photo(path: Path) -> Path:
    """A 4000 x 3000 JPEG of ~3 MB: a real photo upscaled, with sensor-like luma grain."""
    import skimage.data
    from PIL import Image

    base = Image.fromarray(skimage.data.astronaut()).convert("RGB").resize((4000, 3000))
    grain = np.random.default_rng(0).integers(-8, 9, size=(3000, 4000, 1))
    pixels = np.clip(np.asarray(base).astype(np.int16) + grain, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=90)
    return path


def one_search(page: Any, url: str, photo: Path, mode: str, uplink_mbps: float) -> dict[str, Any]:
    """Opens a fresh Search page and times one search with ``photo``."""
    page.goto(f"{url}/")
    shrink, steps = MODES[mode]
    page.evaluate(f"localStorage.setItem('lookalike.shrink', '{shrink}')")
    page.evaluate(f"localStorage.setItem('lookalike.steps', '{steps}')")
    page.wait_for_load_state("networkidle")  # status and suggestions in: the page is idle
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    if uplink_mbps:
        cdp.send(
            "Network.emulateNetworkConditions",
            {
                "offline": False,
                "latency": RTT_MS,
                "uploadThroughput": uplink_mbps * 1e6 / 8,
                "downloadThroughput": 4 * uplink_mbps * 1e6 / 8,
            },
        )
    page.get_by_test_id("query-file").set_input_files(str(photo))
    # Polled from here: the page's CSP forbids the eval that wait_for_function's polling uses.
    # The timestamps are the page's own, so the polling interval does not enter the figures.
    deadline = time.monotonic() + 60
    while (probe := page.evaluate("window.__probe"))["t2"] is None or probe["text"] is None:
        if time.monotonic() > deadline:
            raise TimeoutError("no answer in 60 s")
        time.sleep(0.01)
    lines = [json.loads(line) for line in probe["text"].splitlines()]
    steps = lines if "stage" in lines[0] else [{"stage": "final", "result": lines[0]}]
    timings = steps[-1]["result"]["timings"]
    cdp.detach()
    return {
        "ms": probe["t1"] - probe["t0"],
        "answer_ms": probe["t2"] - probe["t0"],
        "steps": [step["stage"] for step in steps],
        "server_first_ms": float(sum(steps[0]["result"]["timings"].values())),
        "page_ms": probe["sent"] - probe["t0"],
        "request_ms": probe["answered"] - probe["sent"],
        "render_ms": probe["t1"] - probe["answered"],
        "bytes": probe["bytes"],
        "server_decode_ms": float(timings.get("decode_ms", 0.0)),
        "server_ms": float(sum(timings.values())),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ms = [r["ms"] for r in runs]
    answer = [r["answer_ms"] for r in runs]
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "answer_median_ms": round(statistics.median(answer), 1),
        "answer_p90_ms": round(float(np.percentile(answer, 90)), 1),
        "steps": runs[-1]["steps"],
        "upload_image_bytes": int(statistics.median(r["bytes"] for r in runs)),
        # Where the time goes (medians): choosing -> request sent, sent -> response headers
        # (sent with the first step), headers -> first card drawn (reading the step,
        # building the grid, a frame).
        **{k: round(statistics.median(r[k] for r in runs), 1) for k in PHASES},
        "server_decode_ms": round(statistics.median(r["server_decode_ms"] for r in runs), 1),
        "server_first_ms": round(statistics.median(r["server_first_ms"] for r in runs), 1),
        "server_total_ms": round(statistics.median(r["server_ms"] for r in runs), 1),
    }


def measure(url: str, photo: Path, runs: int, uplinks: list[float]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(PROBE)
        page = context.new_page()
        page.goto(f"{url}/login")
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("login-submit").click()
        page.wait_for_url(f"{url}/")
        for uplink in uplinks:
            label = f"{uplink:g}mbps" if uplink else "loopback"
            times: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
            for i in range(runs + 2):  # two warm-ups per mode: first-call costs, caches
                for mode in times:
                    result = one_search(page, url, photo, mode, uplink)
                    if i >= 2:
                        times[mode].append(result)
            for mode, results in times.items():
                out[f"{mode}_{label}"] = summary(results)
        browser.close()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000, help="points in the library")
    ap.add_argument("--runs", type=int, default=10, help="timed searches per mode")
    ap.add_argument(
        "--uplink-mbps",
        type=float,
        default=20.0,
        help="also run behind this emulated upload speed (0: loopback only)",
    )
    ap.add_argument(
        "--compile",
        default="off",
        choices=["on", "auto", "off"],
        help="LOOKALIKE_COMPILE for the server: 'off' is what 'auto' gives a server that is "
        "not indexing; 'on' compiles before /ready (minutes on a cold cache), as "
        "bench/e2e_search.py runs ours",
    )
    ap.add_argument("--light", action="store_true", help="HSV only (smoke test)")
    args = ap.parse_args(argv)
    models = served.LIGHT if args.light else served.MODELS
    with tempfile.TemporaryDirectory() as tmp_name:
        root = Path(tmp_name)
        photo = phone_photo(root / "IMG_0001.jpg")
        build_s = served.build(root, args.n, models)
        # Every point has a keypoint record, as on an indexed library: verification reads
        # and matches its best candidates as it would there (the photo has no copy).
        served.write_keypoints(root / "data", args.n)
        server = served.LiveServer(
            root, models=models, password=PASSWORD, LOOKALIKE_COMPILE=args.compile
        )
        t0 = time.perf_counter()
        with server:
            server.start(timeout=600)
            ready_s = time.perf_counter() - t0
            uplinks = [0.0] + ([args.uplink_mbps] if args.uplink_mbps else [])
            figures = measure(server.url, photo, args.runs, uplinks)
        result: dict[str, Any] = {
            "n": args.n,
            "runs": args.runs,
            "photo_bytes": photo.stat().st_size,
            "photo_px": [4000, 3000],
            **figures,
            "models": "hsv" if args.light else "clip+resnet50+hsv (random weights)",
            "compile": args.compile,
            "uplink_rtt_ms": RTT_MS if args.uplink_mbps else None,
            "build_s": round(build_s, 1),
            "ready_s": round(ready_s, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
