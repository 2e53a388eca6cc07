"""The embedder's small error tree.

Every message names the cause and, where a setting can fix it, that setting, so the engine can
show the sentence unchanged to a user.
"""

from __future__ import annotations


class EmbedderError(Exception):
    """Base of everything the embedder raises on purpose."""


class DecodeError(EmbedderError, ValueError):
    """A file is not an image we can read (unsupported format, truncated, too large...)."""

    def __init__(self, name: str | None, reason: str) -> None:
        self.name = name or "<bytes>"
        self.reason = reason
        super().__init__(f"Cannot decode {self.name}: {reason}")


class ModelLoadError(EmbedderError):
    """A model's weights cannot be had, or the configuration asks for something unknown."""

    def __init__(self, message: str, *, model: str | None = None, setting: str | None = None):
        self.model = model
        self.setting = setting
        super().__init__(message)


# What a failed download says when the machine is offline, in any of the libraries used.
_OFFLINE_SIGNS = (
    "urlerror",
    "name or service not known",
    "temporary failure in name resolution",
    "network is unreachable",
    "connection refused",
    "connectionerror",
    "timed out",
    "timeout",
    "max retries exceeded",
    "offline",
    "localentrynotfounderror",
    "no address associated",
)


def plain_cause(exc: BaseException) -> str:
    """Why a download failed, in words for people rather than an exception's repr."""
    text = f"{type(exc).__name__}: {exc}".lower()
    if any(sign in text for sign in _OFFLINE_SIGNS):
        return "this machine cannot reach the internet"
    if "403" in text or "401" in text:
        return "the download server refused access"
    if "404" in text:
        return "the download server does not have that file"
    if "hash" in text or "checksum" in text:
        return "the downloaded file was damaged"
    first = str(exc).strip().splitlines()
    return first[0] if first else type(exc).__name__
