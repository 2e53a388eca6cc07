"""Where a login sends the browser next: only back into this site."""

from __future__ import annotations

import pytest

from api.routes.login import safe_next


@pytest.mark.parametrize("target", ["/", "/library", "/search?image=abc", "/%2F%2Fevil"])
def test_local_paths_are_kept(target: str) -> None:
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "evil.example",
    ],
)
def test_anything_that_could_leave_the_site_goes_home(target: str | None) -> None:
    assert safe_next(target) == "/"
