"""A Python client generated from the served OpenAPI document (openapi-python-client,
pinned in pyproject's dev extras) does a designer's script's work against a live server:
upload, page through the library, search by image and by id, read a job, delete.

The client is generated at test time into ``tests/.generated`` (git-ignored): what is
tested is the document the server serves now, never a committed copy of it.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.served import ROOT, LiveServer
from tests.integration.conftest import image_bytes

GENERATED = ROOT / "tests" / ".generated"
PACKAGE = "lookalike_client"


def generate_client(document: dict[str, Any], into: Path = GENERATED) -> Any:
    """Generate the client package from ``document`` and import it."""
    into.mkdir(parents=True, exist_ok=True)
    spec = into / "openapi.json"
    spec.write_text(json.dumps(document))
    shutil.rmtree(into / PACKAGE, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "openapi-python-client"), "generate", "--path", str(spec)]
    done = subprocess.run(
        [*command, "--output-path", str(into / PACKAGE), "--meta", "none"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert done.returncode == 0 and (into / PACKAGE / "client.py").exists(), done.stdout
    # The generator's own warnings name what it could not express: none is acceptable
    # beyond the binary bodies of files and thumbnails, which it does not model.
    for line in done.stdout.splitlines():
        if line.startswith("WARNING parsing") and not line.rstrip().endswith(
            ("/file within images.", "/thumbnail within images.")
        ):
            pytest.fail(f"the generator could not read part of the document: {done.stdout}")
    _import_unset(into / PACKAGE)
    sys.path.insert(0, str(into))
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    return importlib.import_module(PACKAGE)


def _import_unset(package: Path) -> None:
    """openapi-python-client 0.29.1 types an operation with two request media types (search:
    JSON or multipart) as ``body: ... | Unset`` without importing ``Unset`` (a Jinja
    scoping slip in its endpoint template): add the import the generated code lacks."""
    for module in (package / "api").rglob("*.py"):
        code = module.read_text()
        if "| Unset" in code and "import UNSET, Response" in code:
            module.write_text(
                code.replace("import UNSET, Response", "import UNSET, Response, Unset")
            )


def _file(types: Any, name: str, data: bytes) -> Any:
    return types.File(payload=io.BytesIO(data), file_name=name, mime_type="image/png")


@pytest.mark.slow
def test_a_generated_client_does_a_scripts_work(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    key = server.key("write")
    server.start()
    try:
        document = httpx.get(f"{server.url}/schema/openapi.json", headers=key, timeout=30).json()
        client_pkg = generate_client(document)
        importlib.import_module(f"{PACKAGE}.api.images")
        from lookalike_client import AuthenticatedClient, models, types  # type: ignore[import-not-found]
        from lookalike_client.api.images import (  # type: ignore[import-not-found]
            delete_image,
            get_image,
            list_images,
            upload_images,
        )
        from lookalike_client.api.library import get_job, reindex  # type: ignore[import-not-found]
        from lookalike_client.api.search import search  # type: ignore[import-not-found]

        assert client_pkg.AuthenticatedClient is AuthenticatedClient
        token = key["Authorization"].split()[1]
        client = AuthenticatedClient(base_url=server.url, token=token, timeout=httpx.Timeout(60))
        pictures = {f"p{i}.png": image_bytes(80 + i) for i in range(3)}

        files = [_file(types, name, data) for name, data in pictures.items()]
        uploaded = upload_images.sync_detailed(
            client=client, body=models.ImageCreate(files=files, tags="client")
        )
        assert uploaded.status_code == 201, uploaded.content

        ids: list[str] = []
        offset = 0
        while True:  # a page of two at a time
            page = list_images.sync(client=client, offset=offset, limit=2)
            assert isinstance(page, models.ImagePage) and page.total == 3
            ids += [image.id for image in page.items]
            offset += 2
            if offset >= page.total:
                break
        assert len(set(ids)) == 3
        by_name = {get_image.sync(image_id=i, client=client).filename: i for i in ids}
        assert set(by_name) == set(pictures)

        query = models.SearchFilesBody(image=_file(types, "q.png", pictures["p1.png"]), k=2)
        by_image = search.sync(client=client, body=query)
        assert isinstance(by_image, models.SearchResponse)
        assert by_image.hits[0].id == by_name["p1.png"] and len(by_image.hits) == 2

        several = models.SearchFilesBody(
            images=[_file(types, f"q{i}.png", pictures[f"p{i}.png"]) for i in (0, 2)], k=3
        )
        by_images = search.sync(client=client, body=several)
        assert isinstance(by_images, models.SearchResponse), by_images
        matched = {h.id: h.matched_query for h in by_images.hits}
        assert matched[by_name["p0.png"]] == 0 and matched[by_name["p2.png"]] == 1

        by_id_query = models.SearchJsonSearchById(image_id=by_name["p2.png"], k=3)
        by_id = search.sync(client=client, body=by_id_query)
        assert isinstance(by_id, models.SearchResponse) and by_id.hits[0].id == by_name["p2.png"]

        job = reindex.sync(client=client, body=models.ReindexRequest())
        assert isinstance(job, models.Job)
        read = get_job.sync(job_id=job.id, client=client)
        assert isinstance(read, models.Job) and read.id == job.id
        assert str(read.state) in ("queued", "running", "done")
        server.wait_job(job.id)

        gone = delete_image.sync_detailed(image_id=by_name["p0.png"], client=client)
        assert gone.status_code == 204
        assert get_image.sync_detailed(image_id=by_name["p0.png"], client=client).status_code == 404
        assert list_images.sync(client=client).total == 2
    finally:
        server.stop()
        sys.path[:] = [p for p in sys.path if p != str(GENERATED)]
