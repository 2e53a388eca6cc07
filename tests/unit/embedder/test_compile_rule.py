"""The compile rule (embedder/compile_rule.py): compiling starts only where it makes the run
faster, and the gate asks it once, on the eager rate of the run's first batches."""

from __future__ import annotations

import pytest

from embedder import compile_rule
from embedder.compile_rule import CompileGate, break_even_images, compile_pays

# 2 cores, all three models eager bf16 (issue 16): ~9 img/s; a compile of ~60 s a model.
E = 9.0


def test_small_jobs_and_single_uploads_stay_eager() -> None:
    for images in (0, 1, 20, 200, 1000):
        assert not compile_pays(images, eager_img_s=E, compile_s=180)


def test_a_long_job_compiles() -> None:
    assert compile_pays(20_000, eager_img_s=E, compile_s=180)


def test_the_break_even_point_is_where_the_rule_turns() -> None:
    n = break_even_images(eager_img_s=E, compile_s=180)
    assert compile_pays(n + 1, eager_img_s=E, compile_s=180)
    assert not compile_pays(n - 2, eager_img_s=E, compile_s=180)
    # The defaults (speedup 1.4, a tenth of the throughput lost meanwhile, margin 1.5): 180 s
    # of compile pays from ~3,000 images; 20 s (warm artifacts, one model) from ~340.
    assert 2800 < n < 3300
    assert 300 < break_even_images(eager_img_s=E, compile_s=20) < 400


def test_a_shorter_compile_or_a_bigger_gain_pays_sooner() -> None:
    slow = break_even_images(eager_img_s=E, compile_s=120)
    assert break_even_images(eager_img_s=E, compile_s=30) < slow
    assert break_even_images(eager_img_s=E, compile_s=120, speedup=3.0) < slow
    assert break_even_images(eager_img_s=E, compile_s=120, slowdown=0.0) < slow
    assert break_even_images(eager_img_s=E, compile_s=120, slowdown=0.5) > slow


def test_no_gain_or_no_rate_never_compiles() -> None:
    assert not compile_pays(10**9, eager_img_s=E, compile_s=10, speedup=1.0)
    assert not compile_pays(10**9, eager_img_s=0, compile_s=10)


@pytest.mark.parametrize("slowdown", [0.0, 0.5, 1.0])
def test_a_job_that_ends_before_the_compile_does_never_compiles(slowdown: float) -> None:
    """The process waits for a compile under way before it exits: never start one that
    outlasts the run, whatever it would have saved."""
    compile_s = 100.0
    during = int(compile_s * compile_rule.MARGIN * E * (1 - slowdown))
    assert not compile_pays(during, eager_img_s=E, compile_s=compile_s, slowdown=slowdown)


def test_the_gate_times_the_first_batches_and_asks_once() -> None:
    gate = CompileGate(total=50_000, compile_s=60)
    clock = 100.0
    decisions = []
    for done in range(16, 161, 16):
        clock += 16 / E  # 16 images a batch at E img/s
        decisions.append(gate.after_batch(done, now=clock))
    # Measured from the first batch (16) over the next 32 images: it decides at 48.
    assert decisions == [False, False, True] + [False] * 7
    assert gate.eager_img_s == pytest.approx(E)


def test_the_gate_keeps_a_short_run_eager() -> None:
    gate = CompileGate(total=100, compile_s=60)
    clock = 0.0
    decisions = []
    for done in range(16, 101, 16):
        clock += 16 / E
        decisions.append(gate.after_batch(done, now=clock))
    assert not any(decisions) and gate.decided


@pytest.mark.parametrize("compile_s", [20.0, 150.0, 300.0])
def test_a_run_that_could_not_pay_even_on_the_slowest_machine_never_would(
    compile_s: float,
) -> None:
    """``could_pay`` answers before any image: below the slowest machine's break-even point,
    no faster eager rate makes compiling pay (the break-even point grows with the rate)."""
    slowest = compile_rule.SLOWEST_EAGER_IMG_S
    edge = break_even_images(eager_img_s=slowest, compile_s=compile_s)
    assert compile_rule.could_pay(edge, compile_s=compile_s)
    assert not compile_rule.could_pay(edge - 1, compile_s=compile_s)
    for rate in (slowest, 5.0, 10.0, 50.0, 500.0):
        assert not compile_pays(edge - 1, eager_img_s=rate, compile_s=compile_s)
    # Three models, nothing on record (2 x 150 s): runs under ~1,100 images settle at once.
    assert 1000 < break_even_images(eager_img_s=slowest, compile_s=300.0) < 1200
