"""Images, speech and moderations through the openai SDK against the fake OpenAI-format upstream: the body
arrives as sent with the provider's key, the answer comes back as the provider gave it (audio bytes equal),
one usage event each (images billed from their token usage; speech and moderations unpriced: `none`)."""

import openai
import pytest

from tests.fake_upstream import SPEECH

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def client(gateway, provider, tenant_key):
    return openai.OpenAI(base_url=f"{gateway}/v1", api_key=tenant_key[2], max_retries=0)


def last_request(upstream, suffix):
    [request] = [r for r in upstream.requests if r["path"].endswith(suffix)]
    assert request["headers"]["authorization"] == "Bearer sk-upstream-secret"
    return request


def test_images_generate(client, upstream, usage_events):
    raw = client.images.with_raw_response.generate(model="openai/gpt-image-1", prompt="a red square", size="1024x1024")
    image = raw.parse()
    assert image.data[0].b64_json == "aGVsbG8="
    assert last_request(upstream, "/images/generations")["body"] == {
        "model": "gpt-image-1", "prompt": "a red square", "size": "1024x1024"}
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["prompt_tokens"], event["completion_tokens"], event["usage_source"]) == (
        "/v1/images/generations", 10, 100, "reported")


def test_speech_bytes_arrive_as_the_provider_sent_them(client, upstream, usage_events):
    raw = client.audio.speech.with_raw_response.create(model="openai/gpt-4o-mini-tts", voice="alloy",
                                                       input="Hello there")
    assert raw.headers["content-type"] == "audio/mpeg"
    assert raw.content == SPEECH
    assert last_request(upstream, "/audio/speech")["body"]["input"] == "Hello there"
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["usage_source"], event["total_tokens"]) == ("/v1/audio/speech", "none", 0)


def test_moderations(client, upstream, usage_events):
    raw = client.moderations.with_raw_response.create(model="openai/omni-moderation-latest", input="hello")
    assert raw.parse().results[0].flagged is False
    [event] = usage_events(raw.headers["x-request-id"])
    assert (event["endpoint"], event["usage_source"]) == ("/v1/moderations", "none")


def test_a_media_call_without_a_model_is_a_400_before_any_upstream_call(client, upstream):
    with pytest.raises(openai.BadRequestError) as raised:
        client.post("/moderations", body={"input": "hello"}, cast_to=object)
    assert raised.value.body["code"] == "missing_required"
    assert upstream.requests == []
