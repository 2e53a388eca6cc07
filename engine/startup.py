"""The order a serving process warms up in, and what it starts once ready.

Open the store (which applies migrations), load the models, then open the FAISS mirror (it
needs to know the models' sizes) and sweep the temporary files of interrupted uploads.
Until that is done the server is not ready. After it, off the start-up path: the payload
cache loads (searches answer without it meanwhile), and with a Qdrant server a follower
picks up writes made by other processes (an embedded store is this process's alone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.mirror_keeper import MirrorFollower

if TYPE_CHECKING:
    from engine.composition import Lookalike

log = logging.getLogger(__name__)

STEPS = ("store", "models", "mirror")


def warm_up(lk: Lookalike, done: Callable[[str], None]) -> dict[str, float]:
    """Run the start-up steps in order, calling ``done(step)`` after each; returns how long
    each took. Raises what a step raises (the caller reports it)."""
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str, fn: Callable[[], object]) -> None:
        t = time.perf_counter()
        fn()
        steps[name] = time.perf_counter() - t

    step("store", lk.resources.store)
    done("store")
    step("models", lk.resources.embedder)
    done("models")
    step("mirror", lambda: lk.mirror_keeper.mirror)
    # Before ready: after it, a new upload's temporary file could look stale.
    swept = lk.library.sweep_stale_uploads()
    if swept:
        log.warning("removed %d temporary file(s) of interrupted uploads", swept)
    done("mirror")
    log.info(
        "ready in %.2f s (%s)",
        time.perf_counter() - started,
        ", ".join(f"{name} {s:.2f} s" for name, s in steps.items()),
    )
    return steps


def after_ready(lk: Lookalike, *, full_diff_every_s: float) -> MirrorFollower | None:
    """The work that must not delay readiness; returns the follower it started, if any."""
    try:
        lk.mirror_keeper.payloads  # noqa: B018 - what hits show while the store is down
    except Exception:
        log.exception("loading the payload cache failed; it loads again when needed")
    if lk.resources.store().backend != "server":
        return None
    follower = MirrorFollower(lk.mirror_keeper.sync, full_every_s=full_diff_every_s)
    follower.start()
    return follower
