"""accounting/labels.py: the one set of rules for labels and end users (key, header, body), and the usage
event's lenient decode of them."""

import pytest

from accounting.labels import LabelError, check_labels, check_user, format_labels, parse_labels
from accounting.usage.events import decode


def test_the_text_form_round_trips():
    labels = parse_labels(" team:search ,env:prod,, url:http://x ")
    assert labels == {"team": "search", "env": "prod", "url": "http://x"}  # split at the first ':'
    assert parse_labels(format_labels(labels)) == labels
    assert parse_labels("team:a,team:b") == {"team": "b"}  # the last of a repeated name wins
    assert parse_labels("") == {} and parse_labels("flag:") == {"flag": ""}


@pytest.mark.parametrize("text, words", [
    ("team", "name:value"), (":v", "non-empty"), ("t\u0007:v", "not printable"), ("t:" + "v" * 65, "longer than 64"),
    ("n" * 65 + ":v", "longer than 64"), (",".join(f"l{i}:v" for i in range(17)), "more than 16"),
])
def test_bad_text_names_the_label(text, words):
    with pytest.raises(LabelError, match=words):
        parse_labels(text)


@pytest.mark.parametrize("labels, words", [
    ([], "object"), ({"a": 1}, "must be a string"), ({"a,b": "v"}, "without ':'"), ({"a": "\n"}, "not printable"),
    ({f"l{i}": "v" for i in range(17)}, "17 labels"),
])
def test_bad_objects(labels, words):
    with pytest.raises(LabelError, match=words):
        check_labels(labels, "metadata")


def test_users():
    assert check_user("u-42@example.com") == "u-42@example.com"
    for bad in ("u" * 65, "a\tb", 42):
        with pytest.raises(LabelError):
            check_user(bad)


def test_the_event_decodes_labels_and_user_leniently():
    event = decode({"request_id": "r", "labels": {"team": "a", "n": 1, "": "x", "long": "v" * 100}, "user": "u" * 99})
    assert event.labels == {"team": "a", "long": "v" * 64} and event.user == "u" * 64
    event = decode({"request_id": "r", "labels": ["team:a"], "user": 5})
    assert (event.labels, event.user) == ({}, "")
