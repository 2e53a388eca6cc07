"""The three roles a model can play in a search, in their fixed order.

A query weight refers to a role, never to a model: 'cnn' means "shape and texture" whether
ResNet-50 or EfficientNet-Lite0 computes it. The order is the one used wherever roles are
listed (status, calibration keys, the fused vector's blocks).
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("clip", "cnn", "hsv")
# The roles a torch network plays: they need a device and torch threads.
NEURAL_ROLES: frozenset[str] = frozenset({"clip", "cnn"})

# What each role looks at, in a designer's words (the UI's sliders and the CLI's help).
ROLE_MEANING: dict[str, str] = {
    "clip": "meaning",
    "cnn": "shape and texture",
    "hsv": "colour",
}
