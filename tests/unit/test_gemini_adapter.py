"""The Gemini adapter's pure translation functions, without a network.

The Gemini bodies below are built from Google's reference pages (no recorded Gemini traffic exists):
- request/response/stream: https://ai.google.dev/api/generate-content
  (GenerateContentRequest, GenerateContentResponse, Candidate.FinishReason, PromptFeedback.BlockReason,
  UsageMetadata; streamGenerateContent with `alt=sse` sends `data: {GenerateContentResponse}` events)
- function calling: https://ai.google.dev/gemini-api/docs/function-calling
  (tools[].functionDeclarations, toolConfig.functionCallingConfig {mode AUTO|ANY|NONE, allowedFunctionNames},
  functionCall {name, args} and functionResponse {name, response} parts)
- thinking: https://ai.google.dev/gemini-api/docs/thinking
  (thinkingConfig.thinkingBudget for Gemini 2.5, thinkingConfig.thinkingLevel for Gemini 3, includeThoughts,
  parts with `"thought": true`, usageMetadata.thoughtsTokenCount)
- models: https://ai.google.dev/api/models (models.list: models[].name "models/...", supportedGenerationMethods)
- errors: https://ai.google.dev/gemini-api/docs/troubleshooting ({"error": {"code", "message", "status"}})
"""

import orjson
import pytest

from providers import gemini
from providers.adapters import adapter_for
from providers.base import SSEDecoder, StreamError, Target, UpstreamError, error_message

TARGET = Target(id=1, name="gemini", provider_type="gemini", wire="gemini",
                base_url="https://generativelanguage.googleapis.com/v1beta", api_key="AIza-test-key")


def build(body: dict, model="gemini-2.5-flash", stream=False):
    body = {"model": model, **body}
    request = gemini.build_chat_request(body, TARGET, model, stream)
    return request, orjson.loads(request.body)


def user(text="Hello"):
    return {"role": "user", "content": text}


def test_adapter_for_finds_the_package():
    module = adapter_for("gemini")
    for name in ("build_chat_request", "parse_chat_response", "StreamParser", "build_models_request",
                 "parse_models"):
        assert hasattr(module, name)


# -- the request: URL, headers --------------------------------------------------------------------

def test_non_stream_url_and_key_header():
    request, _ = build({"messages": [user()]})
    assert request.method == "POST"
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "AIza-test-key"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert "AIza-test-key" not in request.url and "key=" not in request.url


def test_stream_url_asks_for_sse():
    request, _ = build({"messages": [user()], "stream": True}, stream=True)
    assert request.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"
                           ":streamGenerateContent?alt=sse")
    assert request.headers["x-goog-api-key"] == "AIza-test-key"
    assert request.headers["accept"] == "text/event-stream"
    assert "AIza-test-key" not in request.url


def test_body_has_only_gemini_fields():
    _, body = build({"messages": [user()], "stream": True, "stream_options": {"include_usage": True},
                     "provider": "gemini", "user": "u1"}, stream=True)
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


def test_models_prefix_in_model_name_is_not_doubled():
    request, _ = build({"messages": [user()]}, model="models/gemini-2.5-pro")
    assert request.url.endswith("/models/gemini-2.5-pro:generateContent")


# -- the request: messages --------------------------------------------------------------------------

def test_system_and_developer_go_to_system_instruction():
    _, body = build({"messages": [
        {"role": "system", "content": "You are a cat."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        user("Hi"),
    ]})
    assert body["systemInstruction"] == {"parts": [{"text": "You are a cat."}, {"text": "Answer in French."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_a_system_message_after_the_first_turn_stays_in_place_marked():
    """Gemini has no system turn mid-conversation: the instruction joins the user's side where it stood,
    marked as the operator's (a leading one still goes to systemInstruction)."""
    _, body = build({"messages": [
        {"role": "system", "content": "Be brief."},
        user("Hi"),
        {"role": "system", "content": "From now on, answer in French."},
        {"role": "assistant", "content": "Bonjour !"},
        user("Weather?"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18°C"},
        {"role": "developer", "content": [{"type": "text", "text": "The user also asked for tomorrow."}]},
    ]})
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    marked = gemini.request.MID_CONVERSATION_SYSTEM
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}, {"text": marked % "From now on, answer in French."}]},
        {"role": "model", "parts": [{"text": "Bonjour !"}]},
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "18°C"}}},
                                   {"text": marked % "The user also asked for tomorrow."}]},
    ]
    assert marked.startswith("<system_instruction>")


def test_roles_user_and_model():
    _, body = build({"messages": [user("Hi"), {"role": "assistant", "content": "Hello!"}, user("How are you?")]})
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "How are you?"}]},
    ]


def test_unknown_role_is_a_400():
    with pytest.raises(UpstreamError) as err:
        build({"messages": [{"role": "narrator", "content": "x"}]})
    assert err.value.status == 400 and err.value.param == "messages[0].role"


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}


def test_tools_become_function_declarations():
    _, body = build({"messages": [user()], "tools": [WEATHER_TOOL,
                                                     {"type": "function", "function": {"name": "now"}}]})
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Current weather for a city",
         "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"]},
        {"name": "now"},
    ]}]
    assert "toolConfig" not in body


@pytest.mark.parametrize("choice, config", [
    ("auto", {"mode": "AUTO"}),
    ("required", {"mode": "ANY"}),
    ("none", {"mode": "NONE"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice, config):
    _, body = build({"messages": [user()], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_bad_tool_choice_is_a_400():
    with pytest.raises(UpstreamError) as err:
        build({"messages": [user()], "tool_choice": "sometimes"})
    assert err.value.status == 400 and err.value.param == "tool_choice"


def conversation(*tool_messages):
    return [
        user("Weather in Paris and time in Tokyo?"),
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_def", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        *tool_messages,
    ]


def test_assistant_tool_calls_become_function_calls():
    _, body = build({"messages": conversation()})
    assert body["contents"][1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]}


def test_thought_signature_handed_out_with_a_call_goes_back_with_it():
    messages = conversation()
    messages[1]["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": "c2lnbmF0dXJl"}}
    for model in ("gemini-2.5-flash", "gemini-3-pro-preview"):
        _, body = build({"messages": messages}, model=model)
        assert body["contents"][1]["parts"] == [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnbmF0dXJl"},
            {"functionCall": {"name": "get_time", "args": {}}},
        ]


def test_gemini_3_call_without_a_signature_gets_the_documented_stand_in():
    # https://ai.google.dev/gemini-api/docs/thought-signatures: Gemini 3 rejects replayed function calls
    # without a signature; histories that lost it may send "skip_thought_signature_validator".
    _, body = build({"messages": conversation()}, model="gemini-3-pro-preview")
    first, second = body["contents"][1]["parts"]
    assert first["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in second
    _, body = build({"messages": conversation()}, model="gemini-2.5-flash")
    assert all("thoughtSignature" not in part for part in body["contents"][1]["parts"])


def test_tool_results_become_one_function_response_turn_with_names_looked_up():
    _, body = build({"messages": conversation(
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"temp_c": 18, "sky": "cloudy"}'},
        {"role": "tool", "tool_call_id": "call_def", "content": "09:14"},
    )})
    assert body["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18, "sky": "cloudy"}}},
        {"functionResponse": {"name": "get_time", "response": {"result": "09:14"}}},
    ]}


@pytest.mark.parametrize("content, response", [
    ('{"ok": true}', {"ok": True}),
    ("42", {"result": 42}),
    ('"sunny"', {"result": "sunny"}),
    ("[1, 2]", {"result": [1, 2]}),
    ("plain text, not JSON", {"result": "plain text, not JSON"}),
    ([{"type": "text", "text": '{"a": '}, {"type": "text", "text": "1}"}], {"a": 1}),
])
def test_function_response_wrapping(content, response):
    _, body = build({"messages": conversation({"role": "tool", "tool_call_id": "call_abc", "content": content})})
    assert body["contents"][2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": response}


def test_tool_result_for_an_unknown_call_is_a_400():
    with pytest.raises(UpstreamError) as err:
        build({"messages": conversation({"role": "tool", "tool_call_id": "call_zzz", "content": "x"})})
    assert err.value.status == 400 and err.value.param == "messages[2].tool_call_id"


def test_a_user_turn_after_tool_results_is_its_own_content():
    _, body = build({"messages": conversation(
        {"role": "tool", "tool_call_id": "call_abc", "content": "{}"}, user("thanks"))})
    assert [len(c["parts"]) for c in body["contents"]] == [1, 2, 1, 1]


def test_images():
    _, body = build({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/photos/cat.webp?size=large"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/render", "detail": "high"}},
    ]}]})
    assert body["contents"][0]["parts"] == [
        {"text": "What is in these?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/photos/cat.webp?size=large"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render"}},
    ]


def test_image_with_unusable_url_is_a_400():
    with pytest.raises(UpstreamError) as err:
        build({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}}]}]})
    assert err.value.status == 400 and err.value.param == "messages[0].content[0].image_url.url"


# -- the request: generationConfig ------------------------------------------------------------------

def test_generation_config_fields():
    _, body = build({"messages": [user()], "max_tokens": 256, "temperature": 0.2, "top_p": 0.9,
                     "stop": ["\n\n", "END"], "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"maxOutputTokens": 256, "temperature": 0.2, "topP": 0.9,
                                        "stopSequences": ["\n\n", "END"], "responseMimeType": "application/json"}


def test_max_completion_tokens_and_single_stop_string():
    _, body = build({"messages": [user()], "max_completion_tokens": 99, "max_tokens": 5, "stop": "STOP!"})
    assert body["generationConfig"] == {"maxOutputTokens": 99, "stopSequences": ["STOP!"]}


def test_no_generation_config_when_nothing_asked():
    _, body = build({"messages": [user()]})
    assert "generationConfig" not in body


@pytest.mark.parametrize("effort, budget", [
    ("low", 1024), ("medium", 8192), ("high", 24576), ("xhigh", 24576), ("max", 24576),
])
def test_reasoning_effort_on_gemini_2_5_is_a_thinking_budget(effort, budget):
    _, body = build({"messages": [user()], "reasoning": {"effort": effort}}, model="gemini-2.5-flash")
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": budget, "includeThoughts": True}


@pytest.mark.parametrize("effort, level", [
    ("low", "low"), ("medium", "high"), ("high", "high"), ("xhigh", "high"), ("max", "high"),
])
def test_reasoning_effort_on_gemini_3_is_a_thinking_level(effort, level):
    _, body = build({"messages": [user()], "reasoning": {"effort": effort}}, model="gemini-3-pro-preview")
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingLevel": level, "includeThoughts": True}


def test_flat_reasoning_effort_is_read_too():
    _, body = build({"messages": [user()], "reasoning_effort": "medium"}, model="gemini-2.5-pro")
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    _, body = build({"messages": [user()], "reasoning_effort": "low"}, model="gemini-3.1-flash")
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "low", "includeThoughts": True}


@pytest.mark.parametrize("model, config", [
    ("gemini-2.5-flash", {"thinkingBudget": 0}),
    ("gemini-2.5-pro", None),  # cannot stop thinking: left at its default
    ("gemini-3-pro-preview", {"thinkingLevel": "low"}),
])
def test_reasoning_effort_none(model, config):
    _, body = build({"messages": [user()], "reasoning_effort": "none"}, model=model)
    assert body.get("generationConfig", {}).get("thinkingConfig") == config


def test_models_that_do_not_think_get_no_thinking_config():
    _, body = build({"messages": [user()], "reasoning_effort": "high"}, model="gemini-2.0-flash")
    assert "generationConfig" not in body


def test_unrecognised_model_names_get_a_budget():
    # thinkingBudget is what 2.5 takes, and Gemini 3 still accepts it (https://ai.google.dev/gemini-api/docs/thinking)
    _, body = build({"messages": [user()], "reasoning_effort": "low"}, model="gemini-flash-latest")
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}


def test_nested_reasoning_wins_over_flat():
    _, body = build({"messages": [user()], "reasoning": {"effort": "low"}, "reasoning_effort": "high"})
    assert body["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 1024


# -- the response -----------------------------------------------------------------------------------

def response(parts, finish="STOP", usage=None, **extra) -> bytes:
    """A GenerateContentResponse as https://ai.google.dev/api/generate-content shows it."""
    payload = {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage or {"promptTokenCount": 8, "candidatesTokenCount": 12, "totalTokenCount": 20,
                                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}]},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "mKW7aMGbK8nYz7IPnp2E8Ac",
        **extra,
    }
    return orjson.dumps(payload)


def test_text_response():
    data, usage = gemini.parse_chat_response(response([{"text": "Hello"}, {"text": " there."}]))
    assert data["id"] == "chatcmpl-mKW7aMGbK8nYz7IPnp2E8Ac"
    assert data["object"] == "chat.completion"
    assert isinstance(data["created"], int)
    assert data["model"] == "gemini-2.5-flash"
    assert data["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hello there."},
                                "finish_reason": "stop", "logprobs": None}]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (8, 12, 20)


def test_thought_parts_become_reasoning_content_and_usage_counts_thoughts():
    meta = {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 120,
            "cachedContentTokenCount": 4, "totalTokenCount": 135}
    data, usage = gemini.parse_chat_response(response(
        [{"text": "**Weighing it up**\nThe user wants…", "thought": True}, {"text": "42."}], usage=meta))
    message = data["choices"][0]["message"]
    assert message["content"] == "42."
    assert message["reasoning_content"] == "**Weighing it up**\nThe user wants…"
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 125, 135)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 120)
    assert data["usage"] == {
        "prompt_tokens": 10, "completion_tokens": 125, "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 120},
        "raw_usage": meta,
    }


def test_usage_total_is_prompt_plus_completion():
    meta = {"promptTokenCount": 7, "candidatesTokenCount": 3, "toolUsePromptTokenCount": 50, "totalTokenCount": 60}
    _, usage = gemini.parse_chat_response(response([{"text": "x"}], usage=meta))
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (7, 3, 10)


def test_no_usage_metadata_gives_no_usage():
    payload = orjson.loads(response([{"text": "x"}]))
    del payload["usageMetadata"]
    data, usage = gemini.parse_chat_response(orjson.dumps(payload))
    assert usage is None and "usage" not in data


def test_function_calls_become_tool_calls():
    data, _ = gemini.parse_chat_response(response([
        {"text": "Let me check."},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]))
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    assert choice["message"]["tool_calls"] == [
        {"id": "call_0", "type": "function",
         "function": {"name": "get_weather", "arguments": orjson.dumps({"city": "Paris", "unit": "celsius"}).decode()}},
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]


def test_function_call_thought_signature_rides_along_as_extra_content():
    data, _ = gemini.parse_chat_response(response([
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQBVKhc7n=="},
        {"functionCall": {"name": "get_time", "args": {}}},
    ]))
    first, second = data["choices"][0]["message"]["tool_calls"]
    assert first["extra_content"] == {"google": {"thought_signature": "CiQBVKhc7n=="}}
    assert "extra_content" not in second


def test_function_call_only_has_null_content():
    data, _ = gemini.parse_chat_response(response([{"functionCall": {"name": "f", "args": {"a": 1}}}]))
    message = data["choices"][0]["message"]
    assert message["content"] is None and message["tool_calls"][0]["function"]["arguments"] == '{"a":1}'


@pytest.mark.parametrize("reason, expected", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop"), ("LANGUAGE", "stop"),
    ("FINISH_REASON_UNSPECIFIED", "stop"),
])
def test_finish_reasons(reason, expected):
    data, _ = gemini.parse_chat_response(response([{"text": "x"}], finish=reason))
    assert data["choices"][0]["finish_reason"] == expected


def test_safety_stop_without_content():
    payload = {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]}],
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}, "modelVersion": "gemini-2.5-flash"}
    data, usage = gemini.parse_chat_response(orjson.dumps(payload))
    assert data["choices"][0]["finish_reason"] == "content_filter"
    assert data["choices"][0]["message"]["content"] == ""
    assert usage.prompt_tokens == 5 and usage.completion_tokens == 0


def test_blocked_prompt_is_an_upstream_400():
    blocked = orjson.dumps({
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT", "safetyRatings": []},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
        "modelVersion": "gemini-2.5-flash", "responseId": "abc",
    })
    with pytest.raises(UpstreamError) as err:
        gemini.parse_chat_response(blocked)
    assert err.value.status == 400
    assert err.value.code == "prompt_blocked"
    assert "PROHIBITED_CONTENT" in err.value.message and "blocked" in err.value.message


def test_model_falls_back_to_the_requested_one_and_id_is_made_up():
    payload = orjson.loads(response([{"text": "x"}]))
    del payload["modelVersion"], payload["responseId"]
    data, _ = gemini.parse_chat_response(orjson.dumps(payload), "gemini-2.5-flash-lite")
    assert data["model"] == "gemini-2.5-flash-lite"
    assert data["id"].startswith("chatcmpl-") and len(data["id"]) > len("chatcmpl-")


def test_gemini_error_body_reads_through_error_message():
    raw = orjson.dumps({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                  "status": "INVALID_ARGUMENT"}})
    message, param, code = error_message(raw, 400)
    assert message == "API key not valid. Please pass a valid API key."
    assert param is None
    assert code == "INVALID_ARGUMENT"  # Google's status, not the numeric HTTP code


# -- the stream -------------------------------------------------------------------------------------

def sse(*payloads) -> bytes:
    """Gemini frames each event as `data: {...}` followed by CRLF CRLF."""
    return b"".join(b"data: " + orjson.dumps(p) + b"\r\n\r\n" for p in payloads)


def event(parts=None, finish=None, usage=None):
    payload = {"modelVersion": "gemini-2.5-flash", "responseId": "s7yEaJ3kO5DYz7IP1-2gkQE"}
    if parts is not None:
        candidate = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        payload["candidates"] = [candidate]
    if usage is not None:
        payload["usageMetadata"] = usage
    return payload


EARLY_USAGE = {"promptTokenCount": 14, "totalTokenCount": 14,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 14}]}
FINAL_USAGE = {"promptTokenCount": 14, "candidatesTokenCount": 22, "thoughtsTokenCount": 87,
               "cachedContentTokenCount": 3, "totalTokenCount": 123,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 14}]}

TRANSCRIPT = sse(
    event([{"text": "**Planning the answer**\nThey want the weather and a joke. ", "thought": True}],
          usage=EARLY_USAGE),
    event([{"text": "I'll call the weather tool first.", "thought": True}], usage=EARLY_USAGE),
    event([{"text": "Sure — checking Paris"}], usage=EARLY_USAGE),
    event([{"text": " now. "}, {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                 "thoughtSignature": "EpYBCpMBAdHtim9fakeSig=="}],
          usage=EARLY_USAGE),
    event([{"text": "Héllo ✓"}], finish="STOP", usage=FINAL_USAGE),
)


def run_stream(raw: bytes, size: int | None):
    parser = gemini.StreamParser("gemini-2.5-flash")
    decoder = SSEDecoder()
    chunks = []
    pieces = [raw] if size is None else [raw[i:i + size] for i in range(0, len(raw), size)]
    for piece in pieces:
        for name, data in decoder.feed(piece):
            chunks.extend(parser.feed(name, data))
    for name, data in decoder.close():
        chunks.extend(parser.feed(name, data))
    chunks.extend(parser.close())
    return parser, chunks


def deltas(chunks):
    return [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) if c["choices"] else ("usage", c["usage"])
            for c in chunks]


def test_stream_transcript():
    parser, chunks = run_stream(TRANSCRIPT, None)
    assert parser.complete
    assert all(c["id"] == "chatcmpl-s7yEaJ3kO5DYz7IP1-2gkQE" and c["object"] == "chat.completion.chunk"
               and c["model"] == "gemini-2.5-flash" for c in chunks)
    assert len({c["created"] for c in chunks}) == 1
    assert deltas(chunks) == [
        ({"role": "assistant", "content": ""}, None),
        ({"reasoning_content": "**Planning the answer**\nThey want the weather and a joke. "}, None),
        ({"reasoning_content": "I'll call the weather tool first."}, None),
        ({"content": "Sure — checking Paris"}, None),
        ({"content": " now. "}, None),
        ({"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                          "extra_content": {"google": {"thought_signature": "EpYBCpMBAdHtim9fakeSig=="}}}]}, None),
        ({"content": "Héllo ✓"}, None),
        ({}, "tool_calls"),
        ("usage", {"prompt_tokens": 14, "completion_tokens": 109, "total_tokens": 123,
                   "prompt_tokens_details": {"cached_tokens": 3},
                   "completion_tokens_details": {"reasoning_tokens": 87}, "raw_usage": FINAL_USAGE}),
    ]
    usage = parser.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (14, 109, 123)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (3, 87)


@pytest.mark.parametrize("size", [1, 11])
def test_stream_same_output_whatever_the_chunk_size(size):
    _, whole = run_stream(TRANSCRIPT, None)
    _, pieces = run_stream(TRANSCRIPT, size)
    for chunk in whole + pieces:
        chunk.pop("created")
    assert pieces == whole


def test_stream_without_final_blank_line_still_parses():
    raw = TRANSCRIPT[:-4]  # the last event's CRLF CRLF cut off at EOF
    parser, chunks = run_stream(raw, 7)
    assert parser.complete and chunks[-1]["usage"]["total_tokens"] == 123


def test_stream_plain_text_finishes_with_stop():
    raw = sse(event([{"text": "Hi"}], usage=EARLY_USAGE),
              event([{"text": "!"}], finish="STOP",
                    usage={"promptTokenCount": 14, "candidatesTokenCount": 2, "totalTokenCount": 16}))
    parser, chunks = run_stream(raw, None)
    assert [d for d, _ in deltas(chunks)][:3] == [{"role": "assistant", "content": ""}, {"content": "Hi"},
                                                  {"content": "!"}]
    assert deltas(chunks)[3] == ({}, "stop")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


def test_stream_max_tokens_is_length():
    parser, chunks = run_stream(sse(event([{"text": "a"}], finish="MAX_TOKENS", usage=EARLY_USAGE)), None)
    assert deltas(chunks)[-2] == ({}, "length")


def test_stream_usage_arriving_after_the_finish_event_is_the_one_reported():
    raw = sse(event([{"text": "a"}], finish="STOP", usage=EARLY_USAGE),
              {"usageMetadata": {"promptTokenCount": 14, "candidatesTokenCount": 1, "totalTokenCount": 15},
               "modelVersion": "gemini-2.5-flash"})
    parser, chunks = run_stream(raw, None)
    assert chunks[-1]["usage"]["completion_tokens"] == 1 and parser.usage.total_tokens == 15
    assert sum(1 for c in chunks if "usage" in c) == 1


def test_stream_cut_before_finish_is_incomplete_and_close_adds_nothing():
    parser, chunks = run_stream(sse(event([{"text": "a"}], usage=EARLY_USAGE)), None)
    assert not parser.complete
    assert deltas(chunks) == [({"role": "assistant", "content": ""}, None), ({"content": "a"}, None)]
    assert parser.usage.prompt_tokens == 14  # still known, for billing the broken stream


def test_stream_error_event_raises():
    parser = gemini.StreamParser("gemini-2.5-flash")
    parser.feed(None, orjson.dumps(event([{"text": "a"}])))
    with pytest.raises(StreamError) as err:
        parser.feed(None, orjson.dumps({"error": {"code": 503, "message": "The model is overloaded.",
                                                  "status": "UNAVAILABLE"}}))
    assert err.value.message == "The model is overloaded." and err.value.code == "UNAVAILABLE"


def test_stream_blocked_prompt_raises_and_keeps_usage():
    parser = gemini.StreamParser("gemini-2.5-flash")
    with pytest.raises(StreamError) as err:
        parser.feed(None, orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"},
                                        "usageMetadata": {"promptTokenCount": 6, "totalTokenCount": 6}}))
    assert err.value.code == "prompt_blocked" and "SAFETY" in err.value.message
    assert parser.usage.prompt_tokens == 6


def test_stream_model_falls_back_to_the_requested_one():
    parser = gemini.StreamParser("gemini-2.5-pro")
    chunks = parser.feed(None, orjson.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}))
    assert chunks[0]["model"] == "gemini-2.5-pro" and chunks[0]["id"].startswith("chatcmpl-")


# -- models -------------------------------------------------------------------------------------------

def test_models_request():
    request = gemini.build_models_request(TARGET)
    assert request.method == "GET"
    assert request.url.split("?")[0] == "https://generativelanguage.googleapis.com/v1beta/models"
    assert request.headers["x-goog-api-key"] == "AIza-test-key"
    assert "AIza-test-key" not in request.url and "key=" not in request.url
    assert request.body is None


def test_parse_models_strips_prefix_and_keeps_generating_and_embedding_models():
    raw = orjson.dumps({"models": [
        {"name": "models/gemini-2.5-flash", "version": "001", "displayName": "Gemini 2.5 Flash",
         "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent"]},
        {"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]},
        {"name": "models/aqa", "supportedGenerationMethods": ["generateAnswer"]},
        {"name": "models/gemini-3-pro-preview"},
    ], "nextPageToken": ""})
    assert gemini.parse_models(raw) == ["gemini-2.5-flash", "text-embedding-004", "gemini-3-pro-preview"]


def test_embeddings_request_is_batch_embed_contents():
    request = gemini.build_embeddings_request({"model": "gemini/text-embedding-004", "input": ["a", "b"],
                                               "dimensions": 8}, TARGET, "text-embedding-004")
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:batchEmbedContents"
    assert request.headers["x-goog-api-key"] == "AIza-test-key"
    assert orjson.loads(request.body) == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 8},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 8}]}


def test_embeddings_of_token_arrays_are_refused():
    with pytest.raises(UpstreamError) as caught:
        gemini.build_embeddings_request({"input": [[1, 2, 3]]}, TARGET, "text-embedding-004")
    assert caught.value.status == 400 and caught.value.param == "input"


def test_embeddings_response_float_and_base64():
    import base64
    import struct

    raw = orjson.dumps({"embeddings": [{"values": [0.5, -1.0]}, {"values": [0.25, 2.0]}]})
    data, usage = gemini.parse_embeddings_response(raw, "text-embedding-004")
    assert usage is None  # Gemini reports no tokens here: the gateway estimates
    assert data == {"object": "list", "model": "text-embedding-004", "data": [
        {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
        {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}]}
    data, _ = gemini.parse_embeddings_response(raw, "text-embedding-004", "base64")
    packed = base64.b64decode(data["data"][1]["embedding"])
    assert struct.unpack("<2f", packed) == (0.25, 2.0)
