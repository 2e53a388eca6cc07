"""The CLI beside a running ``lookalike serve``: the same commands, through its HTTP API.

The embedded store opens the data directory in one process at a time. When a server holds
it (``engine.local_server`` finds the credential it leaves for this), ``status``, ``search``,
``index``, ``reconcile`` and ``duplicates`` ask that server instead of opening the store:
no model is loaded here, and the answers are the server's own. Each command says so on
one line of stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LookalikeError

if TYPE_CHECKING:
    import httpx

    from engine.local_server import LocalServer

POLL_S = 0.5
TIMEOUT_S = 600.0  # a search embeds; an index job is polled, never waited on in one call


class Remote:
    """A running server, called with the key it published for this machine's CLI."""

    def __init__(self, server: LocalServer) -> None:
        import httpx

        self.server = server
        self._http = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.key}", "Accept": "application/json"},
            timeout=httpx.Timeout(TIMEOUT_S, connect=5.0),
        )

    def announce(self, err: Callable[[str], None]) -> None:
        err(
            f"The Lookalike server at {self.server.url} (pid {self.server.pid}) holds the "
            "data directory: asking it."
        )

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer, or ``LookalikeError`` with the server's own sentence."""
        response = self._send(method, path, **kwargs)
        return response.json() if response.content else None

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LookalikeError(
                f"The Lookalike server (pid {self.server.pid}) holds the data directory but "
                f"does not answer at {self.server.url} ({type(exc).__name__}). Wait for it to "
                "start, or stop it to work on the data directory directly."
            ) from None
        if response.is_success:
            return response
        raise LookalikeError(_detail(response))

    def text(self, path: str, params: dict[str, Any]) -> str:
        """A text answer (CSV), or ``LookalikeError`` with the server's own sentence."""
        return self._send("GET", path, params=params).text

    # -- the commands' calls ----------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/api/v1/status")
        return result

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/search`` with ``body``: httpx's json=, or files= and data=."""
        result: dict[str, Any] = self.call("POST", "/api/v1/search", **body)
        return result

    def sheet(self, body: dict[str, Any], fmt: str) -> bytes:
        """The contact sheet of that search, as a PDF or PNG file's bytes."""
        return self._send("POST", f"/api/v1/search/sheet?format={fmt}", **body).content

    def duplicates(self, threshold: float | None, weights: str | None) -> dict[str, Any]:
        params = {k: v for k, v in (("threshold", threshold), ("weights", weights)) if v}
        result: dict[str, Any] = self.call("GET", "/api/v1/duplicates", params=params)
        return result

    def job(self, path: str, body: dict[str, Any] | None, progress: Any) -> dict[str, Any]:
        """Start a reindex or reconcile job and follow it to its end; its result."""
        job = self.call("POST", path, json=body or {})
        while job["state"] in ("queued", "running"):
            if job.get("total"):
                progress(job.get("stage") or job["kind"], job.get("done", 0), job["total"])
            time.sleep(POLL_S)
            job = self.call("GET", f"/api/v1/jobs/{job['id']}")
        if job["state"] != "done":
            raise LookalikeError(job.get("detail") or f"The server's {job['kind']} failed.")
        if job.get("total"):
            progress(job.get("stage") or job["kind"], job["total"], job["total"])
        result: dict[str, Any] = job.get("result") or {}
        return result


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    return f"The server answered {response.status_code} {response.reason_phrase}."


@contextmanager
def beside_server(data_dir: Path, err: Callable[[str], None]) -> Iterator[Remote | None]:
    """The running server of this data directory (announced on stderr), or None."""
    from engine.local_server import find

    server = find(data_dir)
    if server is None:
        yield None
        return
    remote = Remote(server)
    remote.announce(err)
    try:
        yield remote
    finally:
        remote.close()
