"""The small error tree. Each class maps once to an HTTP status in ``api``; the ``detail``
is a human sentence shown as-is by the CLI and the UI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class LookalikeError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadInput(LookalikeError):
    status = 400
    code = "bad_input"


class UndecodableImage(BadInput):
    code = "undecodable_image"


class TooLarge(LookalikeError):
    status = 413
    code = "too_large"


class NotFound(LookalikeError):
    status = 404
    code = "not_found"


class Conflict(LookalikeError):
    status = 409
    code = "conflict"


class DamagedFile(Conflict):
    """A library image's own file cannot be decoded any more (changed or damaged on disk):
    the library's state, not the request, is at fault."""

    code = "damaged_file"


@contextmanager
def library_file(image_id: str) -> Iterator[None]:
    """Around decoding a library image's own file (to crop it, to look inside it, for its
    thumbnail): a file that no longer decodes is a ``DamagedFile``, not a bad request."""
    try:
        yield
    except UndecodableImage as exc:
        raise DamagedFile(
            f"The file of library image {image_id} cannot be decoded any more ({exc.detail}). "
            "Replace it in the library folder, or delete the image, then run a reconcile."
        ) from exc


class Cancelled(LookalikeError):
    """Work stopped because nobody waits for its result any more (the client left)."""

    status = 503
    code = "cancelled"


class ModelUnavailable(LookalikeError):
    status = 422
    code = "model_unavailable"


class StoreUnavailableError(LookalikeError):
    status = 503
    code = "store_unavailable"


class ConfigError(LookalikeError):
    """Contradictory or invalid settings: raised at start-up, naming the setting."""

    code = "config_error"


class Busy(LookalikeError):
    """The library is locked by a long write (a reindex) for longer than a request waits."""

    status = 503
    code = "busy"


STORE_DOWN = (
    "The image store (Qdrant) cannot be reached, so nothing can be saved or changed right "
    "now; searches are still answered from the local mirror. Try again once it is back."
)

STORE_DOWN_NO_MIRROR = (
    "The image store (Qdrant) cannot be reached, and this server searches it directly "
    "(it keeps no local mirror), so nothing can be searched, saved or changed right now. "
    "Try again once it is back."
)


def translate(exc: Exception) -> Exception:
    """The store's own exceptions as the engine's, so every caller maps them to one status:
    an unreachable store is a 503 with a sentence that does not leak the server's address."""
    from store.base import StoreUnavailable

    if isinstance(exc, StoreUnavailable):
        return StoreUnavailableError(STORE_DOWN)
    return exc
