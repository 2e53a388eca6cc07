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
