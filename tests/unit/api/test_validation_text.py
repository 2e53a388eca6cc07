"""Refusals read as sentences about the field, whatever the validator said: the messages
here are msgspec's own, produced by decoding bad bodies against the API's real schemas."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from api.schemas import ImageUpdate, ReindexRequest
from api.search_schemas import SearchQuery
from api.validation_text import parameter_sentence, validation_sentence

ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"


def refusal(body: bytes, schema: Any = SearchQuery) -> str:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.json.decode(body, type=schema)
    return validation_sentence(str(refused.value))


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        (b'{"text": ""}', "The text must be at least one word, not only spaces."),
        (b'{"text": "   "}', "The text must be at least one word, not only spaces."),
        (
            b'{"filters": {"colour": "teal"}}',
            "Colour must be a colour written as '#rrggbb' or '#rgb', like '#c0ffee'.",
        ),
        (
            b'{"filters": {"colour": "#12"}}',
            "Colour must be a colour written as '#rrggbb' or '#rgb', like '#c0ffee'.",
        ),
        (b'{"box": [1, 2, 3]}', "The crop box must be four whole numbers: [x, y, width, height]"),
        (b'{"k": 1e400}', "The number of results (k) is too large a number."),
        (b'{"k": 0}', "The number of results (k) must be a whole number, at least 1."),
        (b'{"threshold": 2}', "The threshold must be a number, at most 1."),
        (
            b'{"weights": {"cnn": 5000}}',
            "The weight for shape (cnn) must be a number, at most 1000.",
        ),
        (b'{"k": "ten"}', "The number of results (k) must be a whole number; got text."),
        (b'{"colour": "red"}', "'colour' is not something this request takes."),
    ],
)
def test_search_body_refusals_name_the_field_and_what_it_takes(body: bytes, sentence: str) -> None:
    assert refusal(body).startswith(sentence)


def test_tag_refusals_say_what_a_tag_is() -> None:
    too_long = b'{"tags": ["' + b"a" * 65 + b'"]}'
    assert refusal(too_long, ImageUpdate) == "Each of the tags must have at most 64 characters."
    assert refusal(b'{"tags": [""]}', ImageUpdate) == "The tags must not be empty."
    many = msgspec.json.encode({"tags": [str(i) for i in range(101)]})
    assert refusal(many, ImageUpdate) == "The tags must have at most 100 items."
    for bad in ("a,b", "tab\there", "nul\x00"):
        body = msgspec.json.encode({"tags": [bad]})
        assert refusal(body, ImageUpdate).startswith("The tags must be 1 to 64 characters each")
        assert refusal(body, ReindexRequest).startswith("The tags must be 1 to 64 characters")
    assert refusal(b"{}", ImageUpdate) == "The request is missing the tags ('tags')."


def test_no_sentence_shows_the_validators_jargon() -> None:
    bodies = [
        b'{"text": ""}',
        b'{"filters": {"colour": "teal"}}',
        b'{"box": [1, 2]}',
        b'{"k": 1e400}',
        b'{"image_id": 5}',
        b'{"boxes": [[1, 2, 3]]}',
        b'{"filters": {"min_width": -1}}',
    ]
    for body in bodies:
        sentence = refusal(body)
        assert sentence.endswith(".")
        for jargon in ("Expected", "`", "regex", "$.", "[...]", "Number out of range"):
            assert jargon not in sentence, (body, sentence)


def test_litestar_parameter_messages_become_the_same_sentences() -> None:
    assert parameter_sentence("limit", "Expected `int` >= 1") == (
        "The page size (limit) must be a whole number, at least 1."
    )
    assert parameter_sentence("threshold", "Expected `float` <= 1.0") == (
        "The threshold must be a number, at most 1."
    )
    regex = "Expected `str` matching regex '^[0-9a-fA-F]{8}-...$'"
    assert parameter_sentence("image_id", regex) == (f"The image id must be a UUID, like {ID}.")
    assert parameter_sentence("data", "Object missing required field `files`") == (
        "The request is missing the files ('files')."
    )
    assert parameter_sentence("tags[0]", "Expected `str` of length <= 64") == (
        "Each of the tags must have at most 64 characters."
    )
