"""providers.openai_reader: what the Anthropic and Gemini request builders read of an OpenAI request."""

import pytest

from providers.openai_reader import data_url, file_data, image_url, input_audio, read_part, tool_call_arguments


@pytest.mark.parametrize("part, kind, text", [
    ("hi", "text", "hi"),
    ({"type": "text", "text": "a"}, "text", "a"),
    ({"type": "input_text", "text": "b"}, "text", "b"),
    ({"type": "output_text", "text": "c"}, "text", "c"),
    ({"type": "text", "text": 5}, "text", None),
    ({"type": "refusal", "refusal": "no"}, "refusal", "no"),
    ({"type": "image_url", "image_url": {"url": "https://x/a.png"}}, "image_url", None),
    ({"text": "untyped"}, None, None),
])
def test_read_part(part, kind, text):
    read = read_part(part)
    assert (read.kind, read.text, read.raw) == (kind, text, part)


def test_what_is_neither_a_string_nor_an_object_is_no_part():
    assert read_part(5) is None and read_part(None) is None and read_part(["text"]) is None


def test_the_payloads_of_media_parts():
    assert image_url(read_part({"type": "image_url", "image_url": {"url": "https://x/a.png"}})) == "https://x/a.png"
    assert image_url(read_part({"type": "image_url", "image_url": "https://x/b.png"})) == "https://x/b.png"
    assert image_url(read_part({"type": "image_url"})) is None
    assert input_audio(read_part({"type": "input_audio", "input_audio": {"data": "AAA", "format": "mp3"}})) == {
        "data": "AAA", "format": "mp3"}
    assert input_audio(read_part({"type": "input_audio", "input_audio": "AAA"})) == {}
    assert file_data(read_part({"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}})) == \
        "data:application/pdf;base64,JVBE"
    assert file_data(read_part({"type": "file", "file": {"file_id": "file-1"}})) is None
    assert read_part({"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}).cache_control == {
        "type": "ephemeral"}
    assert read_part("x").cache_control is None


@pytest.mark.parametrize("url, parsed", [
    ("data:image/png;base64,iVBO", ("image/png", "iVBO")),
    ("data:image/png;name=a.png;base64,iVBO", ("image/png", "iVBO")),
    ("data:;base64,AAAA", (None, "AAAA")),
    ("data:image/png,rawbytes", None),  # not base64
    ("data:image/png;base64x,AAAA", None),
    ("https://x/a.png", None),
])
def test_data_url(url, parsed):
    assert data_url(url) == parsed


@pytest.mark.parametrize("arguments, parsed", [
    ('{"city": "Paris"}', {"city": "Paris"}),
    ({"city": "Rome"}, {"city": "Rome"}),
    ("", {}), ("  ", {}), (None, {}),
    ("[1, 2]", None), ("{not json", None), ('"text"', None), (5, None),
])
def test_tool_call_arguments(arguments, parsed):
    assert tool_call_arguments(arguments) == parsed
