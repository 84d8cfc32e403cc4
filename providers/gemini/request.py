"""OpenAI chat request -> Gemini `generateContent` / `streamGenerateContent` request.

Wire format: https://ai.google.dev/api/generate-content (request body),
https://ai.google.dev/gemini-api/docs/function-calling (tools, toolConfig, functionResponse),
https://ai.google.dev/gemini-api/docs/thinking (thinkingConfig), https://ai.google.dev/api/models (listing).
"""

import mimetypes
import re
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from ..base import Target, UpstreamError, UpstreamRequest
from ..openai_reader import Part, data_url, file_data, image_url, input_audio, read_part, tool_call_arguments

# OpenAI reasoning effort -> Gemini 2.5 thinkingBudget (tokens). 24576 is the top of 2.5 Flash's range.
THINKING_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576, "max": 24576}
# Gemini 3 and later take a level instead of a budget. Gemini 3 Pro accepts only "low" and "high"
# ("medium"/"minimal" are Flash-only), so anything above low asks for "high".
THINKING_LEVELS = {"minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high", "max": "high"}

SKIP_SIGNATURE = "skip_thought_signature_validator"
# A system (or developer) message after the first turn: Gemini takes system instructions only before the
# conversation (`systemInstruction`), so it goes in place, on the user's side, marked as the operator's.
MID_CONVERSATION_SYSTEM = "<system_instruction>\n%s\n</system_instruction>"
_GENERATION_VERSION = re.compile(r"gemini-(\d+)(?:\.(\d+))?")


def auth_headers(target: Target) -> dict[str, str]:
    """The key goes in `x-goog-api-key`, never in the URL (URLs end up in logs)."""
    headers = {"content-type": "application/json", "accept": "application/json"}
    if target.api_key:
        headers["x-goog-api-key"] = target.api_key
    return headers


def build_chat_request(body: dict[str, Any], target: Target, model: str, stream: bool) -> UpstreamRequest:
    model = model.removeprefix("models/")
    payload = build_payload(body, model)
    path = quote(model, safe="-._~")
    headers = auth_headers(target)
    if stream:
        headers["accept"] = "text/event-stream"
        url = f"{target.base_url}/models/{path}:streamGenerateContent?alt=sse"
    else:
        url = f"{target.base_url}/models/{path}:generateContent"
    return UpstreamRequest("POST", url, headers, orjson.dumps(payload))


def build_models_request(target: Target) -> UpstreamRequest:
    headers = auth_headers(target)
    headers.pop("content-type")
    # The listing is paginated, 50 a page unless asked; 1000 is the most one page can hold.
    return UpstreamRequest("GET", f"{target.base_url}/models?pageSize=1000", headers)


# -- the body ------------------------------------------------------------------------------------

def build_payload(body: dict[str, Any], model: str) -> dict[str, Any]:
    system_parts, contents = _contents(body.get("messages") or [], uses_thinking_level(model))
    payload: dict[str, Any] = {"contents": contents}
    if system_parts:
        payload["systemInstruction"] = {"parts": system_parts}
    tools = _tools(body.get("tools"))
    if tools:
        payload["tools"] = tools
    tool_config = _tool_config(body.get("tool_choice"))
    if tool_config:
        payload["toolConfig"] = tool_config
    generation = _generation_config(body, model)
    if generation:
        payload["generationConfig"] = generation
    return payload


def _bad(message: str, param: str | None, code: str = "invalid_value") -> UpstreamError:
    return UpstreamError(400, message, param=param, code=code)


def _contents(messages: list[Any],
              signatures_required: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system_parts: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name, from earlier assistant turns
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"'messages[{i}]' must be an object.", f"messages[{i}]", "invalid_type")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            texts = [text for text in _texts(content, i) if text]
            if not contents:  # before every turn: Gemini's own system instruction
                system_parts.extend({"text": text} for text in texts)
            elif texts:  # Gemini has no system turn mid-conversation: a marked instruction, in place
                part: dict[str, Any] = {"text": MID_CONVERSATION_SYSTEM % "\n\n".join(texts)}
                if contents[-1]["role"] == "user":
                    contents[-1]["parts"].append(part)
                    contents[-1].pop("_tool_results", None)  # later tool answers open a turn of their own
                else:
                    contents.append({"role": "user", "parts": [part]})
        elif role == "user":
            parts = _user_parts(content, i)
            if parts:
                contents.append({"role": "user", "parts": parts})
        elif role == "assistant":
            parts = [{"text": text} for text in _texts(content, i) if text]
            calls: list[dict[str, Any]] = []
            for j, call in enumerate(message.get("tool_calls") or ()):
                part = _function_call(call, i, j)
                if isinstance(call.get("id"), str):
                    call_names[call["id"]] = part["functionCall"]["name"]
                calls.append(part)
            legacy = message.get("function_call")
            if isinstance(legacy, dict) and not message.get("tool_calls"):
                calls.append(_function_call({"function": legacy}, i, 0))
            if calls and signatures_required and not any("thoughtSignature" in c for c in calls):
                # Gemini 3 rejects a replayed function call without its thought signature; a history
                # that lost it (or never came from Gemini) may carry this documented stand-in instead:
                # https://ai.google.dev/gemini-api/docs/thought-signatures
                calls[0]["thoughtSignature"] = SKIP_SIGNATURE
            parts += calls
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            tool_call_id = message.get("tool_call_id")
            name = ((call_names.get(tool_call_id) if isinstance(tool_call_id, str) else None) if role == "tool"
                    else None) or message.get("name")
            if not isinstance(name, str) or not name:
                raise _bad(f"'messages[{i}]' answers tool call '{message.get('tool_call_id')}', which no earlier "
                           "assistant message made; Gemini needs the function's name.",
                           f"messages[{i}].tool_call_id")
            part = {"functionResponse": {"name": name, "response": _function_result(content, i)}}
            previous = contents[-1] if contents else None
            if previous is not None and previous.get("_tool_results"):
                previous["parts"].append(part)  # parallel calls: all the answers go back in one turn
            else:
                contents.append({"role": "user", "parts": [part], "_tool_results": True})
        else:
            raise _bad(f"'messages[{i}].role' '{role}' cannot be sent to Gemini.", f"messages[{i}].role")
    for content in contents:
        content.pop("_tool_results", None)
    return system_parts, contents


def _texts(content: Any, i: int) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        texts: list[str] = []
        for j, part in enumerate(content):
            read = read_part(part)
            if read is not None and read.kind in ("text", "refusal"):
                if read.text is not None:
                    texts.append(read.text)
            else:
                raise _bad(f"'messages[{i}].content[{j}]' must be a text part here.",
                           f"messages[{i}].content[{j}]", "unsupported_content")
        return texts
    raise _bad(f"'messages[{i}].content' must be a string, an array of parts or null.", f"messages[{i}].content",
               "invalid_type")


def _user_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _bad(f"'messages[{i}].content' must be a string, an array of parts or null.",
                   f"messages[{i}].content", "invalid_type")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        read = read_part(part) or Part(None, part)  # neither a string nor an object: no kind
        kind = read.kind
        if isinstance(part, str):
            parts.append({"text": part})
        elif kind == "text":
            if read.text:
                parts.append({"text": read.text})
        elif kind == "image_url":
            url = image_url(read)
            if not isinstance(url, str) or not url:
                raise _bad(f"'{param}.image_url.url' must be a non-empty string.", f"{param}.image_url.url")
            parts.append(_media(url, f"{param}.image_url.url", "image/jpeg"))
        elif kind == "input_audio":
            audio = input_audio(read)
            if not isinstance(audio.get("data"), str):
                raise _bad(f"'{param}.input_audio.data' must be base64 text.", f"{param}.input_audio.data")
            fmt = str(audio.get("format") or "wav")
            parts.append({"inlineData": {"mimeType": "audio/mpeg" if fmt == "mp3" else f"audio/{fmt}",
                                         "data": audio["data"]}})
        elif kind == "file":
            data = file_data(read)
            if not isinstance(data, str):
                raise _bad(f"'{param}.file.file_data' must be a data: URL; uploaded file ids cannot reach "
                           "Gemini.", f"{param}.file", "unsupported_content")
            parts.append(_media(data, f"{param}.file.file_data", "application/pdf"))
        else:
            raise _bad(f"'{param}' has type '{kind}', which the gateway cannot send to Gemini.", param,
                       "unsupported_content")
    return parts


def _media(url: str, param: str, default_mime: str) -> dict[str, Any]:
    if url.startswith("data:"):
        parsed = data_url(url)
        if parsed is None:
            raise _bad(f"'{param}' must be a base64 data: URL.", param)
        return {"inlineData": {"mimeType": parsed[0] or default_mime, "data": parsed[1]}}
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        mime = mimetypes.guess_type(urlsplit(url).path)[0] or default_mime
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise _bad(f"'{param}' must be an http(s) URL or a data: URL.", param)


def _function_call(call: Any, i: int, j: int) -> dict[str, Any]:
    param = f"messages[{i}].tool_calls[{j}]"
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise _bad(f"'{param}.function.name' must be a non-empty string.", f"{param}.function.name")
    args = tool_call_arguments(function.get("arguments"))
    if args is None:
        raise _bad(f"'{param}.function.arguments' must be a JSON object; Gemini takes arguments as an object.",
                   f"{param}.function.arguments")
    part: dict[str, Any] = {"functionCall": {"name": function["name"], "args": args}}
    signature = thought_signature(call)
    if signature:
        part["thoughtSignature"] = signature
    return part


def thought_signature(call: Any) -> str | None:
    """A signature the gateway handed out with the call, as `extra_content.google.thought_signature`
    (the field Google's own OpenAI-compatible endpoint uses)."""
    extra = call.get("extra_content") if isinstance(call, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _function_result(content: Any, i: int) -> dict[str, Any]:
    """Gemini wants an object back: a JSON object goes as it is, anything else as {"result": ...}."""
    if isinstance(content, list):
        content = "".join(_texts(content, i))
    if content is None:
        content = ""
    if isinstance(content, dict):
        return content
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"result": content}
    return value if isinstance(value, dict) else {"result": value}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        return []
    declarations: list[dict[str, Any]] = []
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise _bad(f"'tools[{k}]' has type '{kind}'; only function tools can be sent to Gemini.",
                       f"tools[{k}].type", "unsupported_tool")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise _bad(f"'tools[{k}].function.name' must be a non-empty string.", f"tools[{k}].function.name")
        declaration: dict[str, Any] = {"name": function["name"]}
        if isinstance(function.get("description"), str):
            declaration["description"] = function["description"]
        parameters = function.get("parameters")
        if isinstance(parameters, dict) and parameters:
            # OpenAI tools carry JSON Schema; `parametersJsonSchema` takes it whole, where `parameters`
            # (an OpenAPI subset) would reject keys such as additionalProperties or $schema.
            declaration["parametersJsonSchema"] = parameters
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}.get(choice)
        if mode is None:
            raise _bad("'tool_choice' must be 'auto', 'required', 'none' or a named function.", "tool_choice")
        return {"functionCallingConfig": {"mode": mode}}
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if isinstance(name, str) and name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise _bad("'tool_choice' must be 'auto', 'required', 'none' or a named function.", "tool_choice")


def _generation_config(body: dict[str, Any], model: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = [s for s in stop if isinstance(s, str)]
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            config["responseMimeType"] = "application/json"
            schema = response_format.get("json_schema")
            if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
                config["responseJsonSchema"] = schema["schema"]
    thinking = thinking_config(_effort(body), model)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _effort(body: dict[str, Any]) -> str | None:
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(effort := reasoning.get("effort"), str):
        return effort
    flat = body.get("reasoning_effort")
    return flat if isinstance(flat, str) else None


def _generation(model: str) -> tuple[int, int] | None:
    match = _GENERATION_VERSION.search(model.lower())
    return (int(match.group(1)), int(match.group(2) or 0)) if match else None


def uses_thinking_level(model: str) -> bool:
    """Gemini 3 and later take `thinkingLevel`; 2.5 (and anything unrecognised) takes `thinkingBudget`."""
    generation = _generation(model)
    return generation is not None and generation >= (3, 0)


def thinking_config(effort: str | None, model: str) -> dict[str, Any] | None:
    if effort is None:
        return None
    generation = _generation(model)
    if generation is not None and generation < (2, 5):
        return None  # Gemini 1.x and 2.0 do not think, and reject a thinkingConfig
    effort = effort.lower()
    if effort == "none":
        # Gemini 3 cannot stop thinking (its lowest level is the nearest); 2.5 Flash and Flash-Lite stop at a
        # budget of 0, 2.5 Pro cannot stop either (its default is left alone).
        if uses_thinking_level(model):
            return {"thinkingLevel": "low"}
        return None if "pro" in model.lower() else {"thinkingBudget": 0}
    if uses_thinking_level(model):
        level = THINKING_LEVELS.get(effort)
        return {"thinkingLevel": level, "includeThoughts": True} if level else None
    budget = THINKING_BUDGETS.get(effort)
    return {"thinkingBudget": budget, "includeThoughts": True} if budget else None
