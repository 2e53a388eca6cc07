"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

No engine runs here (nor in CI), so: the compose file is validated against the Compose
Specification's JSON schema (the copy check-jsonschema ships, so no network is needed), the
Qdrant healthcheck command runs in a local bash against a stub /readyz, and the image's
ENTRYPOINT + CMD run as a plain process over a temporary data directory until /health answers.

The cluster profile's balancer (deploy/haproxy.cfg) is read for what it must route, checked
with `haproxy -c` (Debian's haproxy: scripts/install_checkers.sh), and run against stub Qdrant
nodes and API replicas on loopback to show that a node going down costs no request.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.resources
import ipaddress
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
import urllib.error
import urllib.parse
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
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


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


# -- the cluster profile: no Qdrant node that the API or the migrator depends on --------------


def _enabled(compose: dict[str, Any], profiles: set[str]) -> set[str]:
    """The services Compose enables with these profiles active (no `profiles`: always)."""
    return {
        name
        for name, service in compose["services"].items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def _depends_on(service: dict[str, Any]) -> list[str]:
    return list(service.get("depends_on") or [])


def _started_by(compose: dict[str, Any], target: str) -> set[str]:
    """What `docker compose up -d TARGET` starts: the target (naming it enables its
    profiles) and everything it depends on, which must be enabled too."""
    services = compose["services"]
    enabled = _enabled(compose, set(services[target].get("profiles", [])))
    started: set[str] = set()
    todo = [target]
    while todo:
        name = todo.pop()
        if name not in started:
            assert name in enabled, f"{name} is needed by `up {target}` but is not enabled"
            started.add(name)
            todo.extend(_depends_on(services[name]))
    return started


def _nodes(compose: dict[str, Any]) -> set[str]:
    return {n for n, s in compose["services"].items() if s.get("image", "").startswith("qdrant/")}


def _qdrant_host(service: dict[str, Any]) -> str | None:
    url = (service.get("environment") or {}).get("LOOKALIKE_QDRANT_URL")
    return urllib.parse.urlsplit(url).hostname if url else None


def test_default_start_is_unchanged_qdrant_migrate_and_api(compose: dict[str, Any]) -> None:
    assert _enabled(compose, set()) == {"qdrant", "migrate", "api"}
    assert _started_by(compose, "api") == {"qdrant", "migrate", "api"}
    assert _started_by(compose, "api-gpu") == {"qdrant", "migrate", "api-gpu"}
    assert compose["services"]["api"]["ports"] == ["${LOOKALIKE_PORT:-5050}:5050"]


@pytest.mark.parametrize("profiles", [set(), {"gpu"}, {"cluster"}, {"gpu", "cluster"}])
def test_every_dependency_is_enabled_with_its_dependent(
    compose: dict[str, Any], profiles: set[str]
) -> None:
    """Compose refuses a model where an enabled service depends on a disabled one."""
    enabled = _enabled(compose, profiles)
    for name in enabled:
        missing = set(_depends_on(compose["services"][name])) - enabled
        assert not missing, f"with profiles {profiles}, {name} depends on disabled {missing}"


def test_cluster_start_reaches_qdrant_through_the_balancer_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    nodes = _nodes(compose)
    assert nodes == {"qdrant", "qdrant-2", "qdrant-3"}
    started = _started_by(compose, "api-cluster")
    assert started == {"api-cluster", "migrate-cluster", "balancer", *nodes}
    cluster = {n for n, s in services.items() if "cluster" in s.get("profiles", [])}
    for name in started | cluster:
        service = services[name]
        if name in nodes or name == "balancer":
            continue
        assert _qdrant_host(service) == "balancer", f"{name} must reach Qdrant via the balancer"
        assert not nodes & set(_depends_on(service)), f"{name} depends on a Qdrant node"
        assert service["depends_on"]["balancer"]["condition"] == "service_healthy"
    assert set(_depends_on(services["balancer"])) == nodes
    assert services["migrate-cluster"]["command"] == ["migrate"]
    assert services["migrate-cluster"]["restart"] == "no"
    api = services["api-cluster"]
    assert api["depends_on"]["migrate-cluster"]["condition"] == "service_completed_successfully"


def test_cluster_runs_two_stateless_api_replicas_behind_the_balancer(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    api = services["api-cluster"]
    replicas = api["deploy"]["replicas"]
    assert replicas == 2
    assert "ports" not in api  # replicas cannot share a host port: the balancer publishes it
    assert api["environment"]["LOOKALIKE_SEARCH"] == "qdrant"  # no per-process mirror
    assert {str(v).rsplit(":", 1)[-1] for v in api["volumes"]} == {"/library", "/data", "/models"}
    # The balancer sets X-Forwarded-For; the replicas believe it from private addresses only.
    trusted = api["environment"]["LOOKALIKE_TRUSTED_PROXIES"].split(",")
    assert all(ipaddress.ip_network(net).is_private for net in trusted)
    balancer = services["balancer"]
    assert re.fullmatch(r"haproxy:\d+\.\d+\.\d+", balancer["image"]), balancer["image"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    assert "${LOOKALIKE_PORT:-5050}:5050" in balancer["ports"]  # the same URL as one node
    assert all(p.startswith("127.0.0.1:") for p in balancer["ports"] if "8404" in p)

    sections = _haproxy_sections(HAPROXY_CFG.read_text())
    web = _backend_lines(sections, _frontend_binds(sections)["web"])
    template = next(line.split() for line in web if line.startswith("server-template "))
    assert int(template[2]) >= replicas and template[3] == "api-cluster:5050"
    assert "check" in template
    assert "balance source" in web  # an indexing job's progress lives in one replica
    assert any("uri /health " in line for line in web if line.startswith("http-check send"))


def test_balancer_fronts_every_node_with_health_checks_and_retries(
    compose: dict[str, Any],
) -> None:
    sections = _haproxy_sections(HAPROXY_CFG.read_text())
    binds = _frontend_binds(sections)
    assert binds["web"] == 5050 and binds["qdrant"] == 6333
    url = compose["services"]["api-cluster"]["environment"]["LOOKALIKE_QDRANT_URL"]
    assert urllib.parse.urlsplit(url).port == binds["qdrant"]
    backend = _backend_lines(sections, binds["qdrant"])
    servers = [line.split() for line in backend if line.startswith("server ")]
    assert {s[2] for s in servers} == {f"{node}:6333" for node in _nodes(compose)}
    assert all("check" in s[3:] for s in servers)
    assert "option httpchk" in backend
    assert any("uri /readyz " in line for line in backend if line.startswith("http-check send"))
    assert "http-check expect status 200" in backend
    retry_on = next(line.split()[1:] for line in backend if line.startswith("retry-on "))
    assert {"conn-failure", "empty-response", "503"} <= set(retry_on)
    defaults = sections[("defaults", "")]
    assert any(line.startswith("option redispatch") for line in defaults)
    retries = next(int(line.split()[1]) for line in defaults if line.startswith("retries "))
    assert retries >= len(servers) - 1  # enough to reach every other node
    default_server = next(line for line in defaults if line.startswith("default-server "))
    # Names that do not resolve yet leave a server down instead of stopping HAProxy, and
    # are re-resolved while running (a restarted container has a new address).
    assert re.search(r"init-addr \S*none", default_server)
    assert "resolvers docker" in default_server and ("resolvers", "docker") in sections


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy (install_checkers.sh)")
def test_haproxy_accepts_the_balancer_config() -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _haproxy_sections(text: str) -> dict[tuple[str, str], list[str]]:
    """{(kind, name): [its lines]}, comments dropped, whitespace collapsed."""
    sections: dict[tuple[str, str], list[str]] = {}
    current: list[str] = []
    for raw in text.splitlines():
        line = " ".join(raw.split("#", 1)[0].split())
        if not line:
            continue
        if not raw[0].isspace():
            kind, _, name = line.partition(" ")
            current = sections.setdefault((kind, name), [])
        else:
            current.append(line)
    return sections


def _frontend_binds(sections: dict[tuple[str, str], list[str]]) -> dict[str, int]:
    binds = {}
    for (kind, name), lines in sections.items():
        if kind == "frontend":
            bind = next(line for line in lines if line.startswith("bind "))
            binds[name] = int(bind.split()[1].rsplit(":", 1)[1])
    return binds


def _backend_lines(sections: dict[tuple[str, str], list[str]], port: int) -> list[str]:
    """The lines of the backend that the frontend bound to ``port`` sends requests to."""
    for (kind, name), lines in sections.items():
        if kind == "frontend" and _frontend_binds({(kind, name): lines})[name] == port:
            backend = next(line.split()[1] for line in lines if line.startswith("default_backend"))
            return sections[("backend", backend)]
    raise AssertionError(f"no frontend binds port {port}")


# -- the balancer running: stub Qdrant nodes and API replicas on loopback ---------------------


class _Backend(http.server.BaseHTTPRequestHandler):
    """A stand-in for a Qdrant node or an API replica: says who answered and which
    X-Forwarded-For it saw; /readyz and every other path answer the status set on the server."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Any = self.server
        status = server.readyz if self.path in ("/readyz", "/health") else server.status
        body = json.dumps({"name": server.name, "xff": self.headers.get("X-Forwarded-For")})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # HAProxy's health checks hang up without reading the answer


@contextlib.contextmanager
def _backends(names: list[str]) -> Iterator[dict[str, Any]]:
    servers: dict[str, Any] = {}
    for name in names:
        server: Any = _QuietServer(("127.0.0.1", 0), _Backend)
        server.name, server.status, server.readyz = name, 200, 200
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    try:
        yield servers
    finally:
        for server in servers.values():
            _stop(server)


def _stop(server: Any) -> None:
    if not getattr(server, "stopped", False):
        server.stopped = True
        server.shutdown()
        server.server_close()


def _local_config(ports: dict[str, int], nodes: dict[str, Any], apis: dict[str, Any]) -> str:
    """deploy/haproxy.cfg with loopback addresses for its binds and servers; checks every
    100 ms instead of 2 s so the test waits less. Everything else is the file as shipped."""
    text = HAPROXY_CFG.read_text().replace(" inter 2s ", " inter 100ms ")
    for frontend, port in ports.items():
        text, count = re.subn(
            rf"(frontend {frontend}\n(?:.*\n)*?\s+bind) :\d+", rf"\1 127.0.0.1:{port}", text
        )
        assert count == 1, frontend
    for name, server in nodes.items():
        text, count = re.subn(
            rf"(server {name}) {name}:6333", rf"\1 127.0.0.1:{server.server_port}", text
        )
        assert count == 1, name
    replicas = "\n".join(
        f"    server {name} 127.0.0.1:{server.server_port} check" for name, server in apis.items()
    )
    text, count = re.subn(r"    server-template api \d+ api-cluster:5050 check", replicas, text)
    assert count == 1
    return text


def _request(port: int, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if error.headers.get_content_type().endswith(
            "json"
        ) else None


def _server_status(port: int, backend: str, server: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats;csv", timeout=5) as response:
        rows = response.read().decode().splitlines()
    header = rows[0].lstrip("# ").split(",")
    for row in rows[1:]:
        values = dict(zip(header, row.split(","), strict=False))
        if values["pxname"] == backend and values["svname"] == server:
            return values["status"]
    raise AssertionError(f"{backend}/{server} not in the stats")


def _wait_for(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow  # runs HAProxy
@pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy (install_checkers.sh)")
def test_balancer_keeps_answering_while_nodes_and_replicas_go_down(tmp_path: Path) -> None:
    ports = {"qdrant": _free_port(), "web": _free_port(), "monitor": _free_port()}
    q, web, mon = ports["qdrant"], ports["web"], ports["monitor"]
    with (
        _backends(["qdrant", "qdrant-2", "qdrant-3"]) as nodes,
        _backends(["api1", "api2"]) as apis,
    ):
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(_local_config(ports, nodes, apis))
        log = (tmp_path / "haproxy.log").open("wb")
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=log)
        try:
            _wait_for(lambda: _healthz(mon) == 200)
            # Round robin over the three nodes.
            assert {_request(q)[1]["name"] for _ in range(6)} == set(nodes)

            # A node that is gone: no request fails (retried on another node at once), and
            # its health check takes it out.
            _stop(nodes["qdrant-2"])
            answers = [_request(q) for _ in range(9)]
            assert {status for status, _ in answers} == {200}
            assert "qdrant-2" not in {body["name"] for _, body in answers}
            _wait_for(lambda: _server_status(mon, "qdrant_nodes", "qdrant-2") == "DOWN")

            # A node that answers 503: the request is sent to another node.
            nodes["qdrant-3"].status = 503
            answers = [_request(q) for _ in range(6)]
            assert {(status, body["name"]) for status, body in answers} == {(200, "qdrant")}
            # A node whose /readyz says 503 leaves the rotation; one node left keeps /healthz up.
            nodes["qdrant-3"].readyz = 503
            _wait_for(lambda: _server_status(mon, "qdrant_nodes", "qdrant-3") == "DOWN")
            assert _healthz(mon) == 200

            # No node left: HAProxy answers 503 (the API turns that into its store sentence)
            # and the compose healthcheck fails.
            _stop(nodes["qdrant"])
            status, body = _request(q)
            assert status == 503 and "No Qdrant node is reachable" in body["status"]["error"]
            _wait_for(lambda: _healthz(mon) == 503)

            # Browsers and scripts: one client stays on one replica, which sees the client's
            # address and not one the client made up.
            spoof = {"X-Forwarded-For": "203.0.113.9"}
            answers = [_request(web, "/api", spoof) for _ in range(6)]
            assert len({body["name"] for _, body in answers}) == 1
            assert {body["xff"] for _, body in answers} == {"127.0.0.1"}
            first = answers[0][1]["name"]
            _stop(apis[first])
            status, body = _request(web, "/api")
            assert status == 200 and body["name"] != first
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            log.close()


def _healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


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
def _stub(status: int, base: type[_Readyz] = _Readyz) -> Iterator[int]:
    handler = type("Handler", (base,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _run_healthcheck(compose: dict[str, Any], port: int, service: str = "qdrant") -> int:
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    script = re.sub(r"/dev/tcp/127\.0\.0\.1/\d+", f"/dev/tcp/127.0.0.1/{port}", test[3])
    return subprocess.run(["bash", "-c", script], timeout=10, capture_output=True).returncode


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash, as the qdrant image has")
def test_qdrant_healthcheck_passes_only_when_readyz_says_200(compose: dict[str, Any]) -> None:
    with _stub(200) as port:
        assert _run_healthcheck(compose, port) == 0
    with _stub(503) as port:
        assert _run_healthcheck(compose, port) != 0
    assert _run_healthcheck(compose, _free_port()) != 0  # nothing listening


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash, as the haproxy image has")
def test_balancer_healthcheck_asks_the_monitor_uri(compose: dict[str, Any]) -> None:
    script = compose["services"]["balancer"]["healthcheck"]["test"][3]
    monitor = _frontend_binds(_haproxy_sections(HAPROXY_CFG.read_text()))["monitor"]
    assert f"/dev/tcp/127.0.0.1/{monitor}" in script
    assert "GET /healthz " in script
    handler = type("Handler", (_Readyz,), {"do_GET": _healthz_get})
    with _stub(200, handler) as port:
        assert _run_healthcheck(compose, port, "balancer") == 0
    with _stub(503, handler) as port:
        assert _run_healthcheck(compose, port, "balancer") != 0


def _healthz_get(self: _Readyz) -> None:
    code = self.status if self.path == "/healthz" else 404
    self.send_response(code)
    self.send_header("Content-Length", "0")
    self.end_headers()


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
