"""What compiling a model produces, kept with the data: torch's portable cache artifacts
(``torch.compiler.save_cache_artifacts``), one file per model and setting, next to a small
JSON record of how long compiling took (cold, and warm from the artifacts), which the
compile rule (embedder.compile_rule) reads. The directory also holds inductor's own cache
(``inductor/``: the built C++ kernels, which the artifacts do not carry), so neither is in
``/tmp``, which a reboot or a container restart empties.

An artifact is keyed (``ArtifactKey``) by everything that changes the compiled code: the
model and its weights, the torch version, the CPU's vector capability (or the GPU), the
precision, the batch size, the thread count and int8. A record whose key or checksum does
not match, or an artifact torch refuses, is discarded with a log line and the model is
compiled afresh; a directory that cannot be written leaves compiling in memory, as before.

No torch import at module level (see embedder.torch_model).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the record's fields change meaning: old records are then discarded
# One compile or int8 build at a time in the process: torch.export and dynamo keep global
# tracing state (two int8 builds in parallel threads failed, measured), the cores are busy
# embedding meanwhile anyway, and what ``save`` stores is what was compiled since ``begin``.
BUILD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ArtifactKey:
    model: str
    weights: str  # where the weights came from, with a size and mtime tag for a file
    torch: str
    machine: str  # the CPU's vector capability, or the GPU's name
    device: str
    precision: str
    batch_size: int
    threads: int
    int8: bool

    def digest(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def stem(self) -> str:
        return f"{self.model}-{'int8' if self.int8 else self.precision}-{self.digest()}"


def weights_tag(requested: str, source: str) -> str:
    """The weights' identity: their source, and for a file its size and mtime (a changed
    checkpoint at the same path gets a new key; hashing a 350 MB file would cost seconds)."""
    path = Path(requested)
    with contextlib.suppress(OSError, ValueError):
        if path.is_file():
            stat = path.stat()
            return f"{source}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{source}:{requested}"


def machine_tag(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.backends.cpu.get_cpu_capability()}"


@dataclass
class CompileTimes:
    """Seconds one compile took, as recorded for its key: None where never measured."""

    cold_s: float | None = None
    warm_s: float | None = None


class ArtifactStore:
    """One directory of artifacts (``root``); None or unwritable: compiling stays in memory."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._writable: bool | None = None  # found out at the first compile, not at load

    @property
    def writable(self) -> bool:
        if self._writable is None:
            self._writable = self.root is not None and _ensure_writable(self.root)
        return self._writable

    @property
    def inductor_dir(self) -> Path | None:
        """Where inductor's own cache goes (TORCHINDUCTOR_CACHE_DIR), when writable."""
        return self.root / "inductor" if self.root is not None and self.writable else None

    def use_inductor_dir(self) -> None:
        """Point inductor's cache here (unless TORCHINDUCTOR_CACHE_DIR is set): before anything
        asks torch for its cache directory, which fixes it for the process (/tmp otherwise)."""
        if self.inductor_dir is not None:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.inductor_dir))

    def _paths(self, key: ArtifactKey) -> tuple[Path, Path]:
        assert self.root is not None
        return self.root / f"{key.stem}.bin", self.root / f"{key.stem}.json"

    def record(self, key: ArtifactKey) -> dict[str, Any] | None:
        """The JSON record for ``key``, or None (missing, unreadable or for another key)."""
        if self.root is None:
            return None
        _, meta = self._paths(key)
        try:
            record = json.loads(meta.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.discard(key, f"its record is unreadable ({exc})")
            return None
        if (
            not isinstance(record, dict)
            or record.get("format") != FORMAT
            or record.get("key") != dataclasses.asdict(key)
        ):
            self.discard(key, "its record is for another model, torch or setting")
            return None
        return record

    def times(self, key: ArtifactKey) -> CompileTimes:
        record = self.record(key) or {}
        return CompileTimes(_seconds(record.get("cold_s")), _seconds(record.get("warm_s")))

    def load(self, key: ArtifactKey) -> bool:
        """Hand the artifacts for ``key`` to torch's caches; True when they were accepted.
        Never raises: anything wrong discards them (the caller compiles from scratch)."""
        record = self.record(key)
        if record is None or not record.get("sha256"):
            return False
        blob_path, _ = self._paths(key)
        try:
            blob = blob_path.read_bytes()
        except OSError as exc:
            self.discard(key, f"the artifact file is unreadable ({exc})")
            return False
        if hashlib.sha256(blob).hexdigest() != record["sha256"]:
            self.discard(key, "the artifact file is corrupt (checksum mismatch)")
            return False
        self.use_inductor_dir()  # loading writes into inductor's cache
        try:
            import torch

            info = torch.compiler.load_cache_artifacts(blob)
        except Exception as exc:  # a format from another torch, a truncated pickle...
            self.discard(key, f"torch refused it ({type(exc).__name__}: {str(exc)[:200]})")
            return False
        if info is None:
            self.discard(key, "torch found nothing in it")
            return False
        log.info("%s: compile artifacts loaded (%d bytes)", key.model, len(blob))
        return True

    def save(self, key: ArtifactKey, *, cold_s: float | None, warm_s: float | None) -> None:
        """Store what torch compiled since ``begin()`` (when ``cold_s`` is given) and the times.
        A directory that cannot be written is logged once, then left alone."""
        if self.root is None or not self.writable:
            return
        record = self.record(key) or {"format": FORMAT, "key": dataclasses.asdict(key)}
        blob_path, meta_path = self._paths(key)
        try:
            if cold_s is not None:
                blob = _serialized()
                if blob is None:
                    return
                _write(blob_path, blob)
                record.update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
                record["cold_s"] = round(max(cold_s, 0.01), 2)
            if warm_s is not None:
                record["warm_s"] = round(max(warm_s, 0.01), 2)
            record["saved_at"] = round(time.time())
            _write(meta_path, json.dumps(record, indent=1).encode())
        except OSError as exc:
            self._writable = False
            log.warning(
                "%s: cannot keep compile artifacts in %s (%s); compiling in memory",
                key.model,
                self.root,
                exc,
            )

    def discard(self, key: ArtifactKey, why: str) -> None:
        log.warning("%s: discarding compile artifacts %s: %s", key.model, key.stem, why)
        if self.root is None or not self.writable:
            return
        for path in self._paths(key):
            with contextlib.suppress(OSError):
                path.unlink()


def begin() -> None:
    """Forget the artifacts recorded so far in this process, so that the next ``save``
    holds one model's (compiles run one at a time: BUILD_LOCK)."""
    with contextlib.suppress(Exception):  # a private API: without it, artifacts hold more
        from torch.compiler._cache import CacheArtifactManager

        CacheArtifactManager.clear()


def cache_hits() -> int:
    """Inductor graphs served from its cache so far in this process (-1: unknown): a load
    whose compile hit nothing left stale artifacts, which the caller saves afresh."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["inductor"]["fxgraph_cache_hit"])
    except Exception:  # a private counter: without it, artifacts are trusted as loaded
        return -1


def _serialized() -> bytes | None:
    import torch

    result = torch.compiler.save_cache_artifacts()
    return None if result is None else result[0]


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _write(path: Path, data: bytes) -> None:
    """Atomically: a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _ensure_writable(root: Path) -> bool:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("compile artifacts: %s cannot be created (%s); compiling in memory", root, exc)
        return False
    if not os.access(root, os.W_OK | os.X_OK):
        log.warning("compile artifacts: %s is read-only; compiling in memory", root)
        return False
    return True
