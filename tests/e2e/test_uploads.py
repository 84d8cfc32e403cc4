"""Multipart uploads (transcriptions, translations, image edits) through the openai SDK against the fake
OpenAI-format upstream: the form arrives intact (the file's bytes equal, the other fields as sent) with the
upstream's model name and the provider's key, one usage event each; bad multipart is a 400, never a 500."""

import httpx
import openai
import pytest

from tests.fake_upstream import TRANSCRIPT

pytestmark = [pytest.mark.e2e]

AUDIO = b"RIFF" + bytes(range(256)) * 300 + b"\r\n--not-a-boundary\r\n"  # binary, with CRLFs and dashes in it
PNG = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 50


@pytest.fixture
def client(gateway, provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def last_upload(upstream, suffix):
    [request] = [r for r in upstream.requests if r["path"].endswith(suffix)]
    assert request["headers"]["authorization"] == "Bearer sk-upstream-secret"
    return request


def test_a_transcription_arrives_intact_and_is_billed_from_its_token_usage(client, upstream, usage_events):
    raw = client.audio.transcriptions.with_raw_response.create(
        model="openai/gpt-4o-transcribe", file=("talk.wav", AUDIO, "audio/wav"), prompt="a greeting",
        language="en")
    assert raw.parse().text == TRANSCRIPT
    form = last_upload(upstream, "/audio/transcriptions")["body"]
    assert form["file"] == ("talk.wav", AUDIO)  # bytes equal
    assert (form["model"], form["prompt"], form["language"]) == ("gpt-4o-transcribe", "a greeting", "en")
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["prompt_tokens"], event["completion_tokens"], event["usage_source"]) == (
        "/v1/audio/transcriptions", 14, 6, "reported")


def test_whisper_seconds_and_a_text_answer_are_billed_as_none(client, upstream, usage_events):
    raw = client.audio.translations.with_raw_response.create(model="openai/whisper-1",
                                                             file=("talk.wav", AUDIO, "audio/wav"))
    assert raw.parse().text == TRANSCRIPT
    assert last_upload(upstream, "/audio/translations")["body"]["file"] == ("talk.wav", AUDIO)
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["usage_source"], event["total_tokens"]) == ("/v1/audio/translations", "none", 0)

    text = client.audio.transcriptions.with_raw_response.create(
        model="openai/gpt-4o-transcribe", file=("talk.wav", AUDIO, "audio/wav"), response_format="text")
    assert text.headers["content-type"].startswith("text/plain") and text.text == TRANSCRIPT
    [event] = usage_events(text.headers["x-request-id"])
    assert event["usage_source"] == "none"


def test_an_image_edit_arrives_intact(client, upstream, usage_events):
    raw = client.images.with_raw_response.edit(model="openai/gpt-image-1", image=("in.png", PNG, "image/png"),
                                               prompt="make it blue")
    assert raw.parse().data[0].b64_json == "ZWRpdGVk"
    form = last_upload(upstream, "/images/edits")["body"]
    assert form["image"] == ("in.png", PNG) and form["prompt"] == "make it blue" and form["model"] == "gpt-image-1"
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["prompt_tokens"], event["completion_tokens"]) == ("/v1/images/edits", 20, 100)


def test_the_provider_hint_is_a_routing_field_the_provider_never_sees(gateway, provider, tenant_key, upstream):
    answer = httpx.post(f"{gateway}/v1/audio/transcriptions", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                        data={"model": "gpt-4o-transcribe", "provider": "openai"},
                        files={"file": ("a.wav", AUDIO, "audio/wav")})
    assert answer.status_code == 200, answer.text
    request = last_upload(upstream, "/audio/transcriptions")
    assert set(request["body"]) == {"model", "file"} and request["body"]["file"] == ("a.wav", AUDIO)


@pytest.mark.parametrize("content_type, body, code", [
    ("application/json", b'{"model": "openai/whisper-1"}', "invalid_multipart"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nnot a header line\r\n\r\nhi\r\n--xyz--\r\n", "invalid_multipart"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper",
     "invalid_multipart"),  # cut before its closing boundary
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n"
     b"openai/whisper-1\r\n--xyz--\r\n", "missing_required"),  # no file
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; "
     b"filename=\"a.wav\"\r\n\r\nRIFF\r\n--xyz--\r\n", "missing_required"),  # no model
    ("multipart/form-data; boundary=xyz", b"".join(b"--xyz\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\n"
                                                   b"v\r\n" % n for n in range(65)) + b"--xyz--\r\n",
     "invalid_multipart"),  # more than 64 parts
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n"
     + b"p" * (65 * 1024) + b"\r\n--xyz--\r\n", "invalid_multipart"),  # a text field past 64 KiB
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: attachment\r\n\r\nv\r\n--xyz--\r\n",
     "invalid_multipart"),  # a part without a form-data name
])
def test_bad_multipart_is_a_400_before_any_upstream_call(gateway, provider, tenant_key, upstream, content_type,
                                                          body, code):
    answer = httpx.post(f"{gateway}/v1/audio/transcriptions", content=body,
                        headers={"Authorization": f"Bearer {tenant_key[2]}", "content-type": content_type})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code
    assert upstream.requests == []


def test_an_upload_past_the_body_limit_is_a_413(gateway, provider, tenant_key, upstream, settings):
    answer = httpx.post(f"{gateway}/v1/audio/transcriptions", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                        data={"model": "openai/whisper-1"}, files={"file": ("a.wav", b"x" * (11 * 1024 * 1024))})
    assert answer.status_code == 413
    assert upstream.requests == []


def test_a_streamed_transcription_relays_the_providers_events(client, upstream, usage_events):
    with client.audio.transcriptions.with_streaming_response.create(
            model="openai/gpt-4o-transcribe", file=("talk.wav", AUDIO, "audio/wav"), stream=True) as raw:
        events = list(raw.parse())
        request_id = raw.headers["x-request-id"]
    assert "".join(e.delta for e in events if e.type == "transcript.text.delta") == TRANSCRIPT
    assert events[-1].type == "transcript.text.done"
    assert last_upload(upstream, "/audio/transcriptions")["body"]["file"] == ("talk.wav", AUDIO)
    [event] = usage_events(request_id)
    assert (event["endpoint"], event["stream"], event["prompt_tokens"], event["usage_source"]) == (
        "/v1/audio/transcriptions", True, 14, "reported")


def test_translations_and_image_edits_are_not_streamed(gateway, provider, tenant_key, upstream):
    answer = httpx.post(f"{gateway}/v1/audio/translations", headers={"Authorization": f"Bearer {tenant_key[2]}"},
                        data={"model": "openai/whisper-1", "stream": "true"}, files={"file": ("a.wav", AUDIO)})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_value"
    assert upstream.requests == []
