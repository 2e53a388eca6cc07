"""Whole-process index throughput (issue 16): what a user times. Each figure is one child
process, ``lookalike index FOLDER --json`` (cli.main), timed from spawn to exit: interpreter
start, imports, model load, any compile (and the wait for one under way at exit), the scan,
decode, embedding and store writes. Used by ``bench.index_throughput --whole``.

- ``cold_whole_img_s``: a fresh data directory, an empty temporary directory (so inductor's
  default cache in ``$TMPDIR`` is empty too);
- ``warm_whole_img_s``: a second, different folder of the same size into the same data
  directory, with a fresh, empty ``$TMPDIR``, as after a reboot (what survives is what the
  data directory holds: the compile artifacts and records, embedder.compile_cache);
- ``baseline_whole_img_s``: the naive baseline in the same run: eager fp32, no compile, no
  int8, full-resolution decode (no JPEG draft mode), its own fresh data directory;
- ``peak_rss_mb``: the largest peak resident set of the ``ours`` children (each child's own
  VmHWM, from its exec on), with each child's in ``*_peak_rss_mb``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import served

CHILD = r"""
import functools, sys
if sys.argv[2] == "full-decode":  # the naive baseline decodes at full resolution
    from embedder import pipeline
    pipeline.decode_image = functools.partial(pipeline.decode_image, draft=False)
from cli import main
try:
    code = main(["index", sys.argv[1], "--json"])
finally:  # this process's own peak (VmHWM), from the exec on
    peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
    open(sys.argv[3], "w").write(peak[0].split()[1] if peak else "")
sys.exit(code)
"""

BASELINE = {"precision": "fp32", "compile": "off", "int8": "off"}


@dataclass
class ChildRun:
    seconds: float
    peak_rss_mb: float
    report: dict[str, Any]


def index_child(
    folder: Path, data_dir: Path, library: Path, tmpdir: Path, env: dict[str, str], decode: str
) -> ChildRun:
    """Run ``lookalike index folder`` in a child process; its wall time and peak RSS."""
    tmpdir.mkdir(parents=True, exist_ok=True)
    child_env = {
        **{k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"},
        **env,
        "LOOKALIKE_DATA_DIR": str(data_dir),
        "LOOKALIKE_LIBRARY_DIR": str(library),
        "TMPDIR": str(tmpdir),
        "PYTHONPATH": str(served.ROOT),
    }
    out_path, err_path = tmpdir / "stdout.json", tmpdir / "stderr.log"
    peak_path = tmpdir / "peak_kb"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(folder), decode, str(peak_path)],
            env=child_env,
            stdout=out,
            stderr=err,
            cwd=served.ROOT,
        )
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"lookalike index exited {child.returncode}: {tail}")
    report = json.loads(out_path.read_text().strip().splitlines()[-1])
    # Not wait4's ru_maxrss: that counts the forked child before its exec, which shares this
    # (benchmark) process's pages: after the bench built 1,200 JPEGs here, every child "peaked"
    # at 1.6-2.0 GB, while the same `lookalike index` alone peaked at 1.37 GB.
    own_kb = peak_path.read_text().strip() if peak_path.exists() else ""
    peak_mb = int(own_kb) / 1024 if own_kb else usage.ru_maxrss / 1024  # KiB on Linux
    return ChildRun(seconds, peak_mb, report)


def _env(settings: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in served.models_env(settings).items()}


def compile_records(data_dir: Path) -> dict[str, dict[str, Any]]:
    """The compile records the runs left (embedder.compile_cache): times and sizes."""
    out = {}
    for path in sorted((data_dir / "compiled").glob("*.json")):
        record = json.loads(path.read_text())
        out[path.stem] = {k: record.get(k) for k in ("cold_s", "warm_s", "bytes")}
    return out


def run(
    root: Path, folders: tuple[Path, Path], models: dict[str, Any], compile_mode: str
) -> dict[str, Any]:
    """The three runs over ``folders`` (same size, different images) under ``root``."""
    library = folders[0].parent
    ours_env = _env({**models, "compile": compile_mode})
    base_env = _env({**models, **BASELINE})
    n = sum(1 for _ in folders[0].iterdir())
    cold = index_child(folders[0], root / "data", library, root / "tmp-cold", ours_env, "draft")
    warm = index_child(folders[1], root / "data", library, root / "tmp-warm", ours_env, "draft")
    base = index_child(
        folders[0], root / "base", library, root / "tmp-base", base_env, "full-decode"
    )
    for name, child in (("cold", cold), ("warm", warm), ("baseline", base)):
        if child.report["embedded"] != n or child.report["failed"]:
            raise RuntimeError(f"{name} run incomplete: {child.report}")
    baseline_img_s = n / base.seconds
    return {
        "cold_whole_img_s": round(n / cold.seconds, 2),
        "warm_whole_img_s": round(n / warm.seconds, 2),
        "baseline_whole_img_s": round(baseline_img_s, 2),
        "cold_whole_speedup": round(n / cold.seconds / baseline_img_s, 2),
        "warm_whole_speedup": round(n / warm.seconds / baseline_img_s, 2),
        "peak_rss_mb": round(max(cold.peak_rss_mb, warm.peak_rss_mb)),
        "cold_peak_rss_mb": round(cold.peak_rss_mb),
        "warm_peak_rss_mb": round(warm.peak_rss_mb),
        "baseline_peak_rss_mb": round(base.peak_rss_mb),
        "whole_s": {
            "cold": round(cold.seconds, 1),
            "warm": round(warm.seconds, 1),
            "baseline": round(base.seconds, 1),
        },
        "compile_mode": compile_mode,
        "compile_records": compile_records(root / "data"),
    }
