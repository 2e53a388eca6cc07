"""How long one model's compile takes in a fresh process (issue 16), three ways. Prints one
JSON object (seconds):

- ``cold_s``: an empty compile directory and an empty ``$TMPDIR`` (inductor's default cache);
- ``artifacts_only_s``: the portable artifacts the cold run left, its ``inductor/`` deleted;
- ``artifacts_and_inductor_s``: everything the cold run left under the compile directory,
  with an empty ``$TMPDIR``: a reboot, as the data directory sees it.

Each run compiles with ``compile='on'`` semantics (``start_compile(background=False)``),
random weights (same compute), and reports whether the compiled module was in use.

    python -m bench.compile_times [--model effnet-lite0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import served

CHILD = r"""
import json, sys, time
from pathlib import Path
from embedder.registry import MODELS
model = MODELS[sys.argv[1]]("random", compile_dir=Path(sys.argv[2]))
model.load()
model.tune("auto", "on", "off", 16)
t = time.perf_counter()
model.start_compile(background=False)
print(json.dumps({"s": time.perf_counter() - t, "compiled": model.wait_compiled(),
                  "from_artifacts": model.compiled.from_artifacts}))
"""


def compile_once(model: str, compile_dir: Path, tmpdir: Path) -> dict[str, Any]:
    tmpdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, model, str(compile_dir)],
        env={**env, "TMPDIR": str(tmpdir), "PYTHONPATH": str(served.ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="effnet-lite0")
    args = ap.parse_args(argv)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        compiled = tmp / "data" / "compiled"
        runs["cold"] = compile_once(args.model, compiled, tmp / "t1")
        shutil.rmtree(compiled / "inductor", ignore_errors=True)
        runs["artifacts_only"] = compile_once(args.model, compiled, tmp / "t2")
        runs["artifacts_and_inductor"] = compile_once(args.model, compiled, tmp / "t3")
        artifact_bytes = sum(p.stat().st_size for p in compiled.glob("*.bin"))
    result: dict[str, Any] = {f"{name}_s": round(r["s"], 1) for name, r in runs.items()}
    result.update(
        model=args.model,
        compiled=all(r["compiled"] for r in runs.values()),
        from_artifacts=[r["from_artifacts"] for r in runs.values()],
        artifact_bytes=artifact_bytes,
        loadavg_1m=round(os.getloadavg()[0], 2),
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
