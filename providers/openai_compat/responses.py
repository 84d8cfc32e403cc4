"""The OpenAI Responses API (`POST /v1/responses`) as pure functions: the request to and from chat
completions (for providers that lack the API), the response object and its typed stream events, and
reading a native upstream's answers (usage, output items).

Shapes follow https://platform.openai.com/docs/api-reference/responses and the openai-python types
(`openai.types.responses`); the recorded bodies under tests/fixtures/recorded/*/responses* are the
ground truth for what an upstream sends.
"""

import hashlib
import re
import time
import uuid
from typing import Any

import orjson

from ..base import StreamError, Target, UpstreamError, UpstreamRequest, Usage, _int
from ..chat_deltas import ChatDeltaWalker
from .adapter import auth_headers

# Provider types whose API serves POST /responses itself: the request goes there as is.
NATIVE_PROVIDER_TYPES = frozenset(("openai", "xai"))

# The request fields a response object echoes back (with these defaults when absent).
ECHOED_FIELDS: dict[str, Any] = {
    "instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
    "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": True,
    "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
    "top_p": 1.0, "truncation": "disabled", "user": None,
}


# The id prefix of an input item listed without an id, by the item's type (any JSON value: it is the client's).
ITEM_ID_PREFIXES: dict[Any, str] = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}

MINTED_REASONING = re.compile(r"rs_[0-9a-f]{32}")  # what new_id("rs") makes


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def supports_native(target: Target) -> bool:
    return target.provider_type in NATIVE_PROVIDER_TYPES


# -- input items -----------------------------------------------------------------------------------


def input_items(value: Any) -> list[dict[str, Any]]:
    """The request's `input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    return [dict(item) for item in value]


def listed_items(items: list[dict[str, Any]], response_id: str) -> list[dict[str, Any]]:
    """Items as GET …/input_items lists them: messages with content parts, each item with an id. Items
    sent without one get an id derived from the response and their position, so pages stay stable."""
    out: list[dict[str, Any]] = []
    stem = response_id.split("_", 1)[-1]
    for i, item in enumerate(items):
        item = dict(item)
        if item.get("type") is None and "role" in item:
            item["type"] = "message"
        if item.get("type") == "message" and isinstance(item.get("content"), str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
        if not item.get("id"):
            prefix = ITEM_ID_PREFIXES.get(item.get("type"), "item")
            item["id"] = f"{prefix}_{stem}_{i}"
        out.append(item)
    return out


def replayable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored output sent again as input of a later turn. Reasoning the gateway itself turned into an
    item (a translated provider's thoughts, id minted by `new_id`) is left out: no provider can take
    another's thoughts back, and a native upstream would not know its id. A native upstream's own
    reasoning items stay (OpenAI wants them next to the function calls they led to)."""
    return [item for item in items
            if not (item.get("type") == "reasoning" and MINTED_REASONING.fullmatch(str(item.get("id"))))]


# -- request: Responses -> chat completions --------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content or ():
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
            parts.append(part["refusal"])
    return "".join(parts)


def _chat_parts(content: Any, param: str, strict: bool) -> list[dict[str, Any]] | str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal", "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str):
                if strict:
                    raise UpstreamError(400, "An input_image sent to a provider without the Responses API needs "
                                        "an image_url (file_id images are OpenAI's own).",
                                        param=f"{param}[{j}].image_url", code="unsupported_value")
                continue
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(part.get("file_data"), str):
            parts.append({"type": "file", "file": {k: part[k] for k in ("file_data", "filename") if k in part}})
        elif strict:
            raise UpstreamError(400, f"Content parts of type '{kind}' need a provider with the Responses API.",
                                param=f"{param}[{j}]", code="unsupported_value")
    return parts


def to_chat_messages(instructions: Any, items: list[dict[str, Any]], strict: bool = True) -> list[dict[str, Any]]:
    """Items as chat messages. `strict=False` (native targets: only used to estimate usage) skips
    what chat cannot say instead of refusing it."""
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        param = f"input[{i}]"
        if kind == "message":
            role = item.get("role")
            role = "system" if role == "developer" else role
            content = item.get("content")
            if role == "assistant" or role == "system":
                messages.append({"role": role, "content": _text_of(content)})
            else:
                messages.append({"role": role, "content": _chat_parts(content, f"{param}.content", strict)})
        elif kind == "function_call":
            name = upstream_name(item.get("name"), item.get("namespace"))
            call: dict[str, Any] = {"id": item.get("call_id") or item.get("id"), "type": "function",
                    "function": {"name": name, "arguments": item.get("arguments") or "{}"}}
            if isinstance(item.get("extra_content"), dict):  # Gemini's thought signature, handed back
                call["extra_content"] = item["extra_content"]
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":  # text and calls of one turn: one message
                last.setdefault("tool_calls", []).append(call)
                if not last.get("content"):
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else _text_of(output)})
        elif kind == "reasoning":
            continue  # another provider's thoughts cannot be replayed to this one
        elif strict:
            raise UpstreamError(400, f"Input items of type '{kind}' need a provider with the Responses API.",
                                param=param, code="unsupported_value")
    return messages


# Hosted web search, which Codex offers on every request: a provider without the Responses API cannot run it,
# so it is not offered there (the model answers without it) rather than refused; naming it in tool_choice is a 400.
OPTIONAL_HOSTED_TOOLS = frozenset(("web_search", "web_search_preview", "web_search_2025_08_26",
                                   "web_search_preview_2025_03_11"))


# A namespaced function goes to a chat upstream as `<namespace>__<name>`: unique even when two namespaces share a
# function name, and valid in every provider's function names ([A-Za-z0-9_-]); a call of it is mapped back.
NAMESPACE_SEPARATOR = "__"
MAX_FUNCTION_NAME = 64  # OpenAI's, Anthropic's and Gemini's limit on a function's name


def upstream_name(name: Any, namespace: Any) -> Any:
    """The chat name of a function (of a namespace, when one is given)."""
    if not (isinstance(namespace, str) and namespace and isinstance(name, str)):
        return name
    full = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
    if len(full) <= MAX_FUNCTION_NAME:
        return full
    # Too long for the upstream: cut, with a digest of the whole name so that it stays unique.
    return f"{full[:MAX_FUNCTION_NAME - 9]}_{hashlib.sha256(full.encode()).hexdigest()[:8]}"


def namespaced_functions(tools: Any) -> dict[str, tuple[str, str]]:
    """The chat name of each function of a `namespace` tool -> (namespace, name): what gives a call its
    namespace back. Plain function tools are not in it."""
    out: dict[str, tuple[str, str]] = {}
    for tool in tools if isinstance(tools, list) else ():
        if not (isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("tools"), list)):
            continue
        namespace = tool.get("name")
        for inner in tool["tools"]:
            if isinstance(namespace, str) and namespace and isinstance(inner, dict) and isinstance(
                    inner.get("name"), str):
                out[upstream_name(inner["name"], namespace)] = (namespace, inner["name"])
    return out


def _chat_function(tool: dict[str, Any], namespace: Any = None) -> dict[str, Any]:
    function = {"name": upstream_name(tool.get("name"), namespace)}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools, and the function tools inside a `namespace` (Codex groups its sub-agent tools so), as chat
    functions; a namespace's under `upstream_name`."""
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "function":
            out.append(_chat_function(tool))
        elif kind == "namespace" and isinstance(tool.get("tools"), list):
            for j, inner in enumerate(tool["tools"]):
                inner_kind = inner.get("type") if isinstance(inner, dict) else None
                if inner_kind != "function":
                    raise UpstreamError(400, f"Tools of type '{inner_kind}' need a provider with the Responses API; "
                                        "this one takes function tools only.", param=f"tools[{i}].tools[{j}]",
                                        code="unsupported_value")
                out.append(_chat_function(inner, tool.get("name")))
        elif kind in OPTIONAL_HOSTED_TOOLS:
            continue
        else:
            raise UpstreamError(400, f"Tools of type '{kind}' need a provider with the Responses API; "
                                "this one takes function tools only.", param=f"tools[{i}]", code="unsupported_value")
    return out


def _chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, dict):
        raise UpstreamError(400, f"tool_choice of type '{choice.get('type')}' needs a provider with the Responses "
                            "API.", param="tool_choice", code="unsupported_value")
    return choice


def _chat_response_format(fmt: dict[str, Any]) -> dict[str, Any] | None:
    kind = fmt.get("type")
    if kind == "json_schema":
        schema: dict[str, Any] = {"name": fmt.get("name") or "response", "schema": fmt.get("schema") or {}}
        for key in ("strict", "description"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def to_chat_body(body: dict[str, Any], items: list[dict[str, Any]], stream: bool) -> dict[str, Any]:
    """A chat-completions body saying what the Responses request says; raises UpstreamError(400) for
    what only the Responses API can do (built-in tools, file ids)."""
    chat: dict[str, Any] = {"model": body["model"], "messages": to_chat_messages(body.get("instructions"), items)}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "user"):
        if body.get(key) is not None:
            chat[key] = body[key]
    tools = _chat_tools(body["tools"]) if body.get("tools") else []
    if tools:
        chat["tools"] = tools
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("tool_choice") is not None and tools:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if effort == "minimal":
        effort = "low"
    if effort is not None and effort != "none":
        chat["reasoning"] = {"effort": effort}
    text = body.get("text")
    if isinstance(text, dict) and isinstance(text.get("format"), dict):
        response_format = _chat_response_format(text["format"])
        if response_format is not None:
            chat["response_format"] = response_format
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def build_native_request(body: dict[str, Any], items: list[dict[str, Any]] | None, target: Target, model: str,
                         stream: bool) -> UpstreamRequest:
    """The client's body as it came, with the upstream's model and the gateway's own fields removed.
    `items` (when a previous response is continued) replaces `input`: the conversation expanded,
    since the gateway's response ids mean nothing upstream."""
    out = dict(body)
    out.pop("provider", None)
    out.pop("previous_response_id", None)
    out["model"] = model
    if items is not None:
        # `extra_content` (a Gemini thought signature on a call of an earlier, translated turn) is
        # the gateway's own; OpenAI refuses unknown item fields.
        out["input"] = [{k: v for k, v in item.items() if k != "extra_content"} if "extra_content" in item
                        else item for item in items]
    headers = auth_headers(target)
    if stream:
        headers["accept"] = "text/event-stream"
    return UpstreamRequest("POST", f"{target.base_url}/responses", headers, orjson.dumps(out))


# -- response: chat completions -> Responses -------------------------------------------------------


def usage_to_responses(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {"input_tokens": usage.prompt_tokens, "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens}


def usage_from_responses(usage: Any) -> Usage | None:
    """A Responses `usage` object (native upstream) as the gateway's Usage."""
    if not isinstance(usage, dict):
        return None
    inputs = usage.get("input_tokens_details")
    outputs = usage.get("output_tokens_details")
    prompt, completion = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
    return Usage(prompt_tokens=prompt, completion_tokens=completion,
                 total_tokens=_int(usage.get("total_tokens")) or prompt + completion,
                 cached_tokens=_int(inputs.get("cached_tokens")) if isinstance(inputs, dict) else 0,
                 reasoning_tokens=_int(outputs.get("reasoning_tokens")) if isinstance(outputs, dict) else 0)


def response_object(request: dict[str, Any], response_id: str, created_at: int, model: str, status: str,
                    output: list[Any],
                    usage: dict[str, Any] | None, provider: str, error: dict[str, Any] | None = None,
                    incomplete: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {"id": response_id, "object": "response", "created_at": created_at, "status": status,
            "background": False, "error": error, "incomplete_details": incomplete, "model": model, "output": output}
    for key, default in ECHOED_FIELDS.items():
        value = request.get(key)
        data[key] = default if value is None else value
    reasoning = request.get("reasoning")
    if isinstance(reasoning, dict):
        data["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    data["usage"] = usage
    data["provider"] = provider
    if status == "completed":
        data["completed_at"] = int(time.time())
    return data


INCOMPLETE_REASONS: dict[Any, str] = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _message_item(text: str, status: str = "completed", item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("msg"), "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _reasoning_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("rs"), "type": "reasoning", "summary": [],
            "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}


def _call_item(call_id: str, name: str, arguments: str, status: str = "completed",
               item_id: str | None = None) -> dict[str, Any]:
    return {"id": item_id or new_id("fc"), "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def _name_call(item: dict[str, Any], name: str, namespaces: dict[str, tuple[str, str]]) -> None:
    """Names a call item; a call of a namespaced function gets its own name and its `namespace` back (Codex
    routes a call by both)."""
    if name in namespaces:
        item["namespace"], item["name"] = namespaces[name]
    else:
        item["name"] = name


def from_chat_response(chat: dict[str, Any], namespaces: dict[str, tuple[str, str]] | None = None
                       ) -> tuple[list[dict[str, Any]], str, dict[str, Any] | None]:
    """A chat completion's first choice as Responses output items, with status and incomplete_details;
    `namespaces` (from `namespaced_functions`) names the calls of namespaced functions."""
    choices = chat.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    message = message if isinstance(message := choice.get("message"), dict) else {}
    output: list[dict[str, Any]] = []
    if isinstance(message.get("reasoning_content"), str) and message["reasoning_content"]:
        output.append(_reasoning_item(message["reasoning_content"]))
    content = message.get("content")
    text = content if isinstance(content, str) else _text_of(content) if isinstance(content, list) else ""
    if text:
        output.append(_message_item(text))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            item = _call_item(call.get("id") or new_id("call"), "", function.get("arguments") or "")
            _name_call(item, function.get("name") or "", namespaces or {})
            if isinstance(call.get("extra_content"), dict):
                item["extra_content"] = call["extra_content"]
            output.append(item)
    reason = INCOMPLETE_REASONS.get(choice.get("finish_reason"))
    if reason is not None:
        return output, "incomplete", {"reason": reason}
    return output, "completed", None


# -- streams ---------------------------------------------------------------------------------------


def sse(event: dict[str, Any]) -> bytes:
    kind: str = event["type"]
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class StreamTranslator(ChatDeltaWalker):
    """Chat-completion chunks in, Responses stream events out (each with its sequence_number).

    Items are opened as their first delta arrives (reasoning, text, each tool call) and closed, in
    order, when another kind of item begins or the stream finishes; `output` keeps the finished items.
    """

    def __init__(self, request: dict[str, Any], response_id: str, model: str, provider: str):
        self.request = request
        self.response_id = response_id
        self.model = model
        self.provider = provider
        self.created_at = int(time.time())
        self.sequence = 0
        self.output: list[dict[str, Any] | None] = []  # by output_index; None while in `open`
        self.open: dict[int, dict[str, Any]] = {}  # output_index -> the item being built
        self.calls: dict[int, int] = {}  # chat tool-call index -> output_index
        self.text_index: int | None = None
        self.reasoning_index: int | None = None
        self.finish_reason: str | None = None
        self.namespaces = namespaced_functions(request.get("tools"))

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _response(self, status: str, usage: dict[str, Any] | None = None, error: dict[str, Any] | None = None,
                  incomplete: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(self.request, self.response_id, self.created_at, self.model, status,
                               [item for item in self.output if item is not None], usage, self.provider,
                               error, incomplete)

    def start(self) -> list[dict[str, Any]]:
        snapshot = self._response("in_progress")
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def _add(self, item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        index = len(self.output)
        self.output.append(None)
        self.open[index] = item
        return index, self._event("response.output_item.added", output_index=index, item=dict(item))

    def _close(self, index: int) -> list[dict[str, Any]]:
        item = self.open.pop(index)
        events = []
        if item["type"] == "message":
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            events.append(self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=text, logprobs=[]))
            events.append(self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                      content_index=0, part=part))
            self.text_index = None
        elif item["type"] == "reasoning":
            text = item["content"][0]["text"]
            events.append(self._event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                      content_index=0, text=text))
            self.reasoning_index = None
        else:
            events.append(self._event("response.function_call_arguments.done", item_id=item["id"],
                                      output_index=index, name=item["name"], arguments=item["arguments"]))
        item["status"] = "completed"
        self.output[index] = item
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def _close_all(self, keep: str | None = None) -> list[dict[str, Any]]:
        events = []
        for index in sorted(self.open):
            if self.open[index]["type"] != keep:
                events.extend(self._close(index))
        if keep != "function_call":
            self.calls = {k: v for k, v in self.calls.items() if v in self.open}
        return events

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        return self.walk(chunk)

    def on_reasoning(self, text: str) -> list[dict[str, Any]]:
        events = []
        if self.reasoning_index is None:
            events.extend(self._close_all())
            item: dict[str, Any] = {"id": new_id("rs"), "type": "reasoning", "summary": [],
                    "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"}
            self.reasoning_index, added = self._add(item)
            added["item"] = {k: v for k, v in item.items() if k != "content"}
            events.append(added)
        item = self.open[self.reasoning_index]
        item["content"][0]["text"] += text
        events.append(self._event("response.reasoning_text.delta", item_id=item["id"],
                                  output_index=self.reasoning_index, content_index=0, delta=text))
        return events

    def on_text(self, text: str) -> list[dict[str, Any]]:
        events = []
        if self.text_index is None:
            events.extend(self._close_all())
            item: dict[str, Any] = {"id": new_id("msg"), "type": "message", "status": "in_progress",
                                    "role": "assistant", "content": []}
            self.text_index, added = self._add(item)
            events.append(added)
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            item["content"] = [dict(part)]
            events.append(self._event("response.content_part.added", item_id=item["id"],
                                      output_index=self.text_index, content_index=0, part=part))
        item = self.open[self.text_index]
        item["content"][0]["text"] += text
        events.append(self._event("response.output_text.delta", item_id=item["id"],
                                  output_index=self.text_index, content_index=0, delta=text, logprobs=[]))
        return events

    def on_tool_call(self, position: int, call: dict[str, Any], function: dict[str, Any]) -> list[dict[str, Any]]:
        events = []
        index = self.calls.get(position)
        if index is None or index not in self.open:
            events.extend(self._close_all(keep="function_call"))
            item = _call_item(call.get("id") or new_id("call"), "", "", status="in_progress")
            _name_call(item, function.get("name") or "", self.namespaces)
            index, added = self._add(item)
            self.calls[position] = index
            events.append(added)
        item = self.open[index]
        if isinstance(call.get("extra_content"), dict):
            item["extra_content"] = call["extra_content"]
        if function.get("name") and not item["name"]:
            _name_call(item, function["name"], self.namespaces)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item["arguments"] += arguments
            events.append(self._event("response.function_call_arguments.delta", item_id=item["id"],
                                      output_index=index, delta=arguments))
        return events

    def on_finish(self, reason: str) -> None:
        self.finish_reason = reason

    def finish(self, usage: Usage | None) -> list[dict[str, Any]]:
        events = self._close_all()
        reason = INCOMPLETE_REASONS.get(self.finish_reason)
        if reason is not None:
            return events + [self._event("response.incomplete", response=self._response(
                "incomplete", usage_to_responses(usage), incomplete={"reason": reason}))]
        return events + [self._event("response.completed",
                                     response=self._response("completed", usage_to_responses(usage)))]

    def fail(self, message: str, code: str, usage: Usage | None = None) -> dict[str, Any]:
        """The stream broke: the terminal event; the items finished so far are in its output."""
        return self._event("response.failed", response=self._response(
            "failed", usage_to_responses(usage), error={"code": code, "message": message}))


class NativeStreamReader:
    """Reads a native upstream's Responses stream on its way to the client: renames the response to
    the gateway's id, names the provider, and keeps what accounting and storage need (usage, the
    final output items)."""

    TERMINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self, response_id: str, provider: str, previous_response_id: str | None = None):
        self.response_id = response_id
        self.provider = provider
        self.previous_response_id = previous_response_id
        self.usage: Usage | None = None
        self.output: list[dict[str, Any]] = []
        self.status: str | None = None
        self.sequence = 0

    @property
    def complete(self) -> bool:
        return self.status is not None

    def feed(self, data: bytes) -> dict[str, Any] | None:
        event = orjson.loads(data)
        if not isinstance(event, dict):
            return None
        kind = event.get("type")
        if kind == "error":
            raise StreamError(str(event.get("message") or "upstream stream error"), code=event.get("code"))
        if isinstance(event.get("sequence_number"), int):
            self.sequence = event["sequence_number"] + 1
        response = event.get("response")
        if isinstance(response, dict):
            response["id"] = self.response_id
            response["provider"] = self.provider
            response["previous_response_id"] = self.previous_response_id
            if kind in self.TERMINAL:
                self.status = response.get("status") or kind.rsplit(".", 1)[-1]
                self.usage = usage_from_responses(response.get("usage"))
                if isinstance(response.get("output"), list):
                    self.output = response["output"]
        return event

    def failed(self, message: str, code: str, request: dict[str, Any], model: str, created_at: int) -> dict[str, Any]:
        """The terminal event the gateway adds when the upstream's stream breaks."""
        event = {"type": "response.failed", "sequence_number": self.sequence,
                 "response": response_object(request, self.response_id, created_at, model, "failed", self.output,
                                             usage_to_responses(self.usage), self.provider,
                                             error={"code": code, "message": message})}
        self.sequence += 1
        return event
