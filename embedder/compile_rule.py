"""Compile only when it pays: the rule that decides, early in a bulk ``embed_files`` run,
whether starting the background compile can make that run faster (docs/performance.md).

While a compile runs, it shares the cores with the eager embedding and slows it down (by the
fraction ``slowdown``); once it is done, the compiled models run ``speedup`` times faster.
With ``e`` eager images/s, compile time ``C`` and ``N`` images left:

    images embedded while compiling   n_c  = C * e * (1 - slowdown)
    what the compile costs them       C * slowdown seconds
    what the rest saves               (N - n_c) * (1/e - 1/(speedup * e)) seconds

It pays when the saving exceeds the cost, with ``C`` taken ``MARGIN`` times longer than
expected: the estimates are rough, and a compile that does not pay must not run (nor hold up
the end of the run: the process waits for a compile under way before it exits). ``C`` is
what compiling took on this machine before, recorded with the artifacts
(embedder.compile_cache): warm from them when they are there, else cold; ``DEFAULT_COMPILE_S``
when nothing was ever recorded. ``e`` is measured on the run's first batches.

No torch here: a pure rule, unit-tested (tests/unit/embedder/test_compile_rule.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# A model's compile when none was ever recorded on this machine. Beside a running index, the
# compile gets what the embedding leaves of the cores: EffNet-Lite0 took 206 s there, 44-82 s
# alone (2 cores shared with other work; CLIP and ResNet-50 ~35 s alone, embedder.compiled).
DEFAULT_COMPILE_S = 150.0
# Whole-pipeline images/s compiled over eager bf16: the models gain 1.35-1.7x (more with
# int8, embedder.compiled), decoding and HSV gain nothing.
DEFAULT_SPEEDUP = 1.4
# The fraction of eager throughput lost while a compile shares the cores. Measured once
# (EffNet-Lite0 eager, 2 cores, its own cold compile in the background): 7.0 -> 6.6 img/s,
# 0.06: the embedding keeps its threads and the compile stretches instead (206 s).
DEFAULT_SLOWDOWN = 0.1
MARGIN = 1.5
# Images whose embedding the run times before it decides (after a first batch, which pays
# for first calls): the eager rate ``e``. Runs shorter than this never compile.
MEASURE_AFTER = 16
MEASURE_IMAGES = 32
# The slowest eager rate of the whole pipeline assumed on any machine (images/s): the three
# seed models run 10-11 on 2 AVX-512 cores in bf16, 5.5-6 in fp32 (docs/performance.md).
SLOWEST_EAGER_IMG_S = 2.0


def compile_pays(
    images_left: int,
    *,
    eager_img_s: float,
    compile_s: float,
    speedup: float = DEFAULT_SPEEDUP,
    slowdown: float = DEFAULT_SLOWDOWN,
    margin: float = MARGIN,
) -> bool:
    """Whether compiling now makes embedding ``images_left`` images faster (module docstring)."""
    if images_left <= 0 or eager_img_s <= 0 or speedup <= 1.0:
        return False
    slowdown = min(max(slowdown, 0.0), 1.0)
    c = max(compile_s, 0.0) * margin
    during = c * eager_img_s * (1.0 - slowdown)
    after = images_left - during
    if after <= 0:
        return False
    saving = after * (1.0 / eager_img_s - 1.0 / (speedup * eager_img_s))
    return saving > c * slowdown


def could_pay(images: int, *, compile_s: float) -> bool:
    """Whether compiling might pay for a run of ``images`` on any machine embedding at
    ``SLOWEST_EAGER_IMG_S`` or faster: the break-even point grows with the eager rate, so a
    run below the slowest machine's break-even point never compiles, whatever its first
    batches measure. An index-only run asks at its start (embedder.pipeline)."""
    return images >= break_even_images(eager_img_s=SLOWEST_EAGER_IMG_S, compile_s=compile_s)


def break_even_images(
    *,
    eager_img_s: float,
    compile_s: float,
    speedup: float = DEFAULT_SPEEDUP,
    slowdown: float = DEFAULT_SLOWDOWN,
    margin: float = MARGIN,
) -> int:
    """The fewest images left for which ``compile_pays`` (for logs and the docs)."""
    if eager_img_s <= 0 or speedup <= 1.0:
        return 2**63 - 1
    c = max(compile_s, 0.0) * margin
    slowdown = min(max(slowdown, 0.0), 1.0)
    saving_per_image = 1.0 / eager_img_s - 1.0 / (speedup * eager_img_s)
    during = c * eager_img_s * (1.0 - slowdown)
    return int(during + c * slowdown / saving_per_image) + 1


@dataclass
class CompileGate:
    """Times a run's first batches and asks the rule once. ``total``: images in the run;
    ``compile_s``: the expected compile time of every model still to compile, together (they
    compile one after another)."""

    total: int
    compile_s: float
    started: float | None = None
    decided: bool = False
    eager_img_s: float | None = None
    _from: int = 0

    def after_batch(self, done: int, now: float | None = None) -> bool:
        """Call after each batch with the images done so far; True once, when to compile."""
        if self.decided:
            return False
        now = time.perf_counter() if now is None else now
        if self.started is None:
            if done >= MEASURE_AFTER:
                self.started, self._from = now, done
            return False
        if done - self._from < MEASURE_IMAGES:
            return False
        self.decided = True
        self.eager_img_s = e = (done - self._from) / max(now - self.started, 1e-6)
        pays = compile_pays(self.total - done, eager_img_s=e, compile_s=self.compile_s)
        log.info(
            "compile rule: %d images left at %.1f img/s eager, compiling expected to take "
            "%.0f s (pays from ~%d images left): %s",
            self.total - done,
            e,
            self.compile_s,
            break_even_images(eager_img_s=e, compile_s=self.compile_s),
            "compiling in the background" if pays else "staying eager",
        )
        return pays
