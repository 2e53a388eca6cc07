"""`lookalike search --inside / --no-inside`: the three answers reach the engine and the
server as asked, and leaving it out leaves the choice to the setting."""

from __future__ import annotations

import argparse

import pytest

from cli.search import CliQuery, add_search_arguments, remote_body, request


def _args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_search_arguments(parser, default_k=10)
    return parser.parse_args([*flags, "query.jpg"])


@pytest.mark.parametrize(
    ("flags", "engine", "form"),
    [((), None, None), (("--inside",), True, "true"), (("--no-inside",), False, "false")],
)
def test_inside_is_passed_on_as_given(flags: tuple[str, ...], engine, form) -> None:
    args = _args(*flags)
    query = CliQuery("query.jpg", files=[("query.jpg", b"jpeg bytes")])
    assert request(args, query).inside is engine
    sent = remote_body(args, query)["data"]
    assert sent.get("inside") == form
    by_id = remote_body(args, CliQuery("id", image_ids=["6b1f7d0e-0000-4000-8000-000000000000"]))
    assert by_id["json"].get("inside") is engine
