"""Scripted fake upstreams for the real-agent tests (tests/e2e/test_agents.py): the fakes of tests/fake_upstream.py,
tests/fake_anthropic.py and tests/fake_gemini.py, each answering every generation request from one script, in its
own wire format, streamed or not.

The script (`decide`) reads the request as JSON text and the names of the tools it declares:
- a tool's result came back (the file's code word, the weather) -> the final answer, which quotes it;
- the prompt asks to read a file and a file-reading tool is declared -> a call of that tool;
- the prompt asks for the weather and `get_weather` is declared -> a call of it;
- anything else (a plain prompt, a client's side request: titles, topics, quota probes) -> PLAIN.
"""

import re
import time

import orjson

from tests.fake_anthropic import FakeAnthropic
from tests.fake_gemini import FakeGemini
from tests.fake_upstream import FakeUpstream

PLAIN = "PONG from the fake agent upstream."
CODE_WORD = "ZEBRA-4711"  # in the file the test writes; it reaches the model only through a tool's result
WEATHER = "SUNNY-21C"  # what the tests' get_weather tool returns
READ_FILE = re.compile(r"Read the file (/[\w./-]+)")
USAGE = (20, 5)  # (prompt, completion) tokens every answer reports


def final_answer(text: str) -> str | None:
    if CODE_WORD in text:
        return f"The code word is {CODE_WORD}."
    if WEATHER in text:
        return f"The weather in Paris: {WEATHER}."
    return None


def _call_for_file(path: str, tools: dict[str, dict]) -> tuple[str, dict] | None:
    """A call that reads `path` with one of the tools the client declared (by its schema's field names)."""
    if "Read" in tools:  # Claude Code
        return "Read", {"file_path": path}
    for name in ("exec_command", "shell", "container.exec", "shell_command"):  # Codex, by version
        schema = tools.get(name)
        if schema is None:
            continue
        properties = (schema or {}).get("properties") or {}
        if "cmd" in properties:
            return name, {"cmd": f"cat {path}"}
        if "command" in properties:
            kind = (properties["command"] or {}).get("type")
            return name, {"command": ["cat", path] if kind == "array" else f"cat {path}"}
    return None


def decide(text: str, tools: dict[str, dict]) -> tuple[str, object]:
    """("text", answer) or ("call", (name, arguments)) for a request whose JSON is `text`."""
    answer = final_answer(text)
    if answer is not None:
        return "text", answer
    match = READ_FILE.search(text)
    if match:
        call = _call_for_file(match.group(1), tools)
        if call is not None:
            return "call", call
    if "weather in Paris" in text and "get_weather" in tools:
        return "call", ("get_weather", {"city": "Paris"})
    return "text", PLAIN


def _dumps(body) -> str:
    return orjson.dumps(body).decode() if body is not None else ""


class AgentUpstream(FakeUpstream):
    """OpenAI-format: chat completions and the Responses API (`POST /v1/responses`), both scripted."""

    def generation_requests(self):
        return [r for r in self.requests if r["path"].endswith(("/chat/completions", "/responses"))]

    async def chat(self, body, send):
        tools = {t["function"]["name"]: t["function"].get("parameters") for t in body.get("tools") or ()
                 if isinstance(t, dict) and isinstance(t.get("function"), dict)}
        kind, value = decide(_dumps(body.get("messages")), tools)
        message = {"role": "assistant", "content": value if kind == "text" else None}
        if kind == "call":
            name, arguments = value
            message["tool_calls"] = [{"id": f"call_{int(time.time() * 1e6)}", "type": "function",
                                      "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}]
        finish = "tool_calls" if kind == "call" else "stop"
        prompt, completion = USAGE
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        base = {"id": "chatcmpl-agent", "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            return await self._json(send, 200, {**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": message, "finish_reason": finish}], "usage": usage})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})

        async def event(payload):
            data = b"[DONE]" if payload is None else orjson.dumps({**base, "object": "chat.completion.chunk",
                                                                   **payload})
            await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True})

        await event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        if kind == "call":
            call = message["tool_calls"][0]
            await event({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, **call}]},
                                      "finish_reason": None}]})
        else:
            for piece in re.findall(r"\S+\s*", value):
                await event({"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        await event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await event({"choices": [], "usage": usage})
        await event(None)
        await send({"type": "http.response.body", "body": b""})

    async def responses(self, body, send):
        tools = {t.get("name"): t.get("parameters") for t in body.get("tools") or ()
                 if isinstance(t, dict) and t.get("type") == "function"}
        kind, value = decide(_dumps([body.get("instructions"), body.get("input")]), tools)
        if kind == "call":
            name, arguments = value
            item = {"id": "fc_agent1", "type": "function_call", "status": "completed",
                    "call_id": f"call_{int(time.time() * 1e6)}", "name": name,
                    "arguments": orjson.dumps(arguments).decode()}
        else:
            item = {"id": "msg_agent1", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": value}]}
        prompt, completion = USAGE
        usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}

        def response(status, output, usage=None):
            return {"id": "resp_agent0123", "object": "response", "created_at": int(time.time()), "status": status,
                    "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
                    "max_output_tokens": body.get("max_output_tokens"), "model": body["model"], "output": output,
                    "parallel_tool_calls": True, "previous_response_id": None, "reasoning": {"effort": None},
                    "store": body.get("store", True), "temperature": 1.0, "text": {"format": {"type": "text"}},
                    "tool_choice": "auto", "tools": body.get("tools") or [], "top_p": 1.0, "truncation": "disabled",
                    "usage": usage, "user": None, "metadata": {}}

        if not body.get("stream"):
            return await self._json(send, 200, response("completed", [item], usage))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
        sequence = 0

        async def event(kind_, **fields):
            nonlocal sequence
            payload = {"type": kind_, **fields, "sequence_number": sequence}
            sequence += 1
            await send({"type": "http.response.body", "more_body": True,
                        "body": b"event: " + kind_.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"})

        await event("response.created", response=response("in_progress", []))
        if kind == "call":
            await event("response.output_item.added", output_index=0, item={**item, "arguments": "",
                                                                             "status": "in_progress"})
            await event("response.function_call_arguments.delta", item_id=item["id"], output_index=0,
                        delta=item["arguments"])
            await event("response.function_call_arguments.done", item_id=item["id"], output_index=0,
                        arguments=item["arguments"])
        else:
            await event("response.output_item.added", output_index=0,
                        item={**item, "status": "in_progress", "content": []})
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            await event("response.content_part.added", item_id=item["id"], output_index=0, content_index=0, part=part)
            await event("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0,
                        delta=value, logprobs=[])
            await event("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=value,
                        logprobs=[])
            await event("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                        part={**part, "text": value})
        await event("response.output_item.done", output_index=0, item=item)
        await event("response.completed", response=response("completed", [item], usage))
        await send({"type": "http.response.body", "body": b""})


class AgentAnthropic(FakeAnthropic):
    """Anthropic Messages, scripted (count_tokens and the model list answered as FakeAnthropic does)."""

    def generation_requests(self):
        return self.message_requests()

    async def messages(self, body, send):
        tools = {t["name"]: t.get("input_schema") for t in body.get("tools") or ()
                 if isinstance(t, dict) and isinstance(t.get("name"), str)}
        kind, value = decide(_dumps(body.get("messages")), tools)
        if kind == "call":
            name, arguments = value
            block = {"type": "tool_use", "id": f"toolu_{int(time.time() * 1e6)}", "name": name, "input": arguments}
        else:
            block = {"type": "text", "text": value}
        stop = "tool_use" if kind == "call" else "end_turn"
        prompt, completion = USAGE
        usage = {"input_tokens": prompt, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                 "output_tokens": completion}
        message = {"id": "msg_agent", "type": "message", "role": "assistant", "model": body.get("model"),
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        if not body.get("stream"):
            return await self._json(send, 200, message)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})

        async def event(name, payload):
            data = b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **payload}) + b"\n\n"
            await send({"type": "http.response.body", "body": data, "more_body": True})

        await event("message_start", {"message": {**message, "content": [], "stop_reason": None,
                                                  "usage": {**usage, "output_tokens": 1}}})
        if kind == "call":
            await event("content_block_start", {"index": 0, "content_block": {**block, "input": {}}})
            await event("content_block_delta", {"index": 0, "delta": {
                "type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}})
        else:
            await event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
            await event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": value}})
        await event("content_block_stop", {"index": 0})
        await event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": completion}})
        await event("message_stop", {})
        await send({"type": "http.response.body", "body": b""})


class AgentGemini(FakeGemini):
    """Gemini generateContent / streamGenerateContent, scripted."""

    def generation_requests(self):
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith("enerateContent")]

    def _answer(self, body) -> dict:
        tools = {}
        for tool in (body or {}).get("tools") or ():
            for declaration in tool.get("functionDeclarations") or ():
                tools[declaration["name"]] = declaration.get("parameters") or declaration.get("parametersJsonSchema")
        kind, value = decide(_dumps([(body or {}).get("systemInstruction"), (body or {}).get("contents")]), tools)
        if kind == "call":
            name, arguments = value
            part = {"functionCall": {"name": name, "args": arguments}, "thoughtSignature": "c2ln"}
        else:
            part = {"text": value}
        prompt, completion = USAGE
        return {"candidates": [{"content": {"parts": [part], "role": "model"}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": completion,
                                  "totalTokenCount": prompt + completion},
                "modelVersion": "gemini-agent", "responseId": "agent-1"}

    async def generate(self, model, body, send):
        await self._json(send, 200, self._answer(body))

    async def stream(self, model, body, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: " + orjson.dumps(self._answer(body)) + b"\r\n\r\n",
                    "more_body": True})
        await send({"type": "http.response.body", "body": b""})
