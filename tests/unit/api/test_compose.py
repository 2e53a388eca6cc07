"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

No engine runs here (nor in CI), so: the compose file is validated against the Compose
Specification's JSON schema (the copy check-jsonschema ships, so no network is needed), the
Qdrant healthcheck command runs in a local bash against a stub /readyz, and the image's
ENTRYPOINT + CMD run as a plain process over a temporary data directory until /health answers.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.resources
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())  # resolves the x-* anchors and << merges
    assert isinstance(data, dict)
    return data


def _compose_schema() -> dict[str, Any]:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendor / "compose-spec.json").read_text())
    return schema


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = _compose_schema()
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_qdrant_is_pinned_persistent_checked_and_keyed(compose: dict[str, Any]) -> None:
    qdrant = compose["services"]["qdrant"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", qdrant["image"]), qdrant["image"]
    assert any(str(v).endswith(":/qdrant/storage") for v in qdrant["volumes"])
    assert qdrant["healthcheck"]["test"][0] == "CMD"
    assert "QDRANT_API_KEY" in qdrant["environment"]["QDRANT__SERVICE__API_KEY"]
    # The dashboard is reachable from the host only.
    assert all(str(p).startswith("127.0.0.1:") for p in qdrant["ports"])


def test_api_waits_for_qdrant_and_migrate_and_mounts_its_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("api", "api-gpu"):
        api = services[name]
        assert api["build"]["context"] == "."
        assert api["depends_on"]["qdrant"]["condition"] == "service_healthy"
        assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        targets = {str(v).rsplit(":", 1)[-1] for v in api["volumes"]}
        assert targets == {"/library", "/data", "/models"}
        assert api["environment"]["LOOKALIKE_QDRANT_URL"] == "http://qdrant:6333"
        assert "QDRANT_API_KEY" in api["environment"]["LOOKALIKE_QDRANT_API_KEY"]
    assert "profiles" not in services["api"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"


def test_gpu_profile_reserves_a_gpu(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert gpu["environment"]["LOOKALIKE_DEVICE"] == "cuda"


def test_cluster_profile_has_three_peers_bootstrapping_from_the_first(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    peers = [s for s in services if s.startswith("qdrant")]
    assert sorted(peers) == ["qdrant", "qdrant-2", "qdrant-3"]
    for name in peers:
        assert services[name]["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
    for name in ("qdrant-2", "qdrant-3"):
        peer = services[name]
        assert peer["profiles"] == ["cluster"]
        command = peer["command"]
        assert command[command.index("--bootstrap") + 1] == "http://qdrant:6335"
        assert command[command.index("--uri") + 1] == f"http://{name}:6335"
        assert services[name]["image"] == services["qdrant"]["image"]


# -- the Qdrant healthcheck, run by a local bash against a stub --------------------------------


class _Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/readyz" else 404
        body = b"all shards are ready" if code == 200 else b"not ready"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _stub(status: int) -> Iterator[int]:
    handler = type("Handler", (_Readyz,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(compose: dict[str, Any], port: int) -> int:
    test = compose["services"]["qdrant"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = test[3].replace("/6333", f"/{port}")
    return subprocess.run(["bash", "-c", script], timeout=10, capture_output=True).returncode


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash, as the qdrant image has")
def test_qdrant_healthcheck_passes_only_when_readyz_says_200(compose: dict[str, Any]) -> None:
    with _stub(200) as port:
        assert _run_healthcheck(compose, port) == 0
    with _stub(503) as port:
        assert _run_healthcheck(compose, port) != 0
    assert _run_healthcheck(compose, _free_port()) != 0  # nothing listening


# -- the Dockerfile's entrypoint, run outside Docker -------------------------------------------


def _dockerfile_final_stage() -> list[tuple[str, str]]:
    """(instruction, argument) pairs of the last stage, continuations joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stage: list[tuple[str, str]] = []
    for line in lines:
        instruction, _, argument = line.partition(" ")
        if instruction.upper() == "FROM":
            stage = []
        stage.append((instruction.upper(), argument.strip()))
    return stage


def _exec_form(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    values = [arg for ins, arg in stage if ins == instruction]
    assert values, f"the Dockerfile's last stage has no {instruction}"
    parsed = json.loads(values[-1])  # exec form: a JSON array, so no shell sits in between
    assert isinstance(parsed, list)
    return [str(p) for p in parsed]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins, arg in stage:
        if ins == "ENV":
            for pair in shlex.split(arg):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dockerfile_installs_cpu_torch_by_default() -> None:
    text = DOCKERFILE.read_text()
    match = re.search(r"ARG TORCH_INDEX_URL=(\S+)", text)
    assert match and match.group(1) == "https://download.pytorch.org/whl/cpu"
    assert '--index-url "${TORCH_INDEX_URL}"' in text


@pytest.mark.slow  # starts the image's entrypoint: a real server
def test_dockerfile_entrypoint_serves_health(tmp_path: Path) -> None:
    stage = _dockerfile_final_stage()
    entrypoint = _exec_form(stage, "ENTRYPOINT")
    cmd = _exec_form(stage, "CMD")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts, f"ENTRYPOINT runs {entrypoint[0]}, not a console script"
    env_from_image = _env(stage)
    assert env_from_image["LOOKALIKE_DATA_DIR"] == "/data"

    argv = [*entrypoint[1:], *cmd]
    port = _free_port()
    # Same command, but on loopback and a free port: a test listens on nothing else.
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    module, _, func = scripts[entrypoint[0]].partition(":")
    # The console script's own code path, whether or not the package is pip-installed here.
    launcher = f"import sys; from {module} import {func}; sys.exit({func}())"
    env = {
        **os.environ,
        "LOOKALIKE_DATA_DIR": str(tmp_path / "data"),
        "LOOKALIKE_LIBRARY_DIR": str(tmp_path / "library"),
        "LOOKALIKE_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "LOOKALIKE_ADMIN_PASSWORD": "entrypoint-test-password",
        "LOOKALIKE_CLIP_WEIGHTS": "off",
        "LOOKALIKE_CNN": "effnet-lite0",
        "PYTHONPATH": str(ROOT),
    }
    for key in ("LOOKALIKE_QDRANT_URL", "LOOKALIKE_QDRANT_API_KEY"):
        env.pop(key, None)
    (tmp_path / "library").mkdir()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", launcher, *argv],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            body = _wait_for_health(f"http://127.0.0.1:{port}/health", proc, timeout=120)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert body is not None, f"/health never answered; server log:\n{log.read_text()[-4000:]}"


def _wait_for_health(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return bytes(response.read())
        except OSError:
            pass
        time.sleep(0.25)
    return None
