"""One walk over a chat.completion.chunk's deltas, shared by the stream writers that turn chat chunks into
another protocol's events (Anthropic Messages: providers.anthropic.ingress.EventWriter; Responses:
providers.openai_compat.responses.StreamTranslator). A writer says what each kind of delta becomes."""

from typing import Any


class ChatDeltaWalker:
    """Walks the first choice's delta in the order a client reads it: reasoning, text, tool calls, the
    finish reason. Subclasses implement the four hooks; each returns the events it makes."""

    __slots__ = ()

    def walk(self, chunk: dict[str, Any]) -> list[Any]:
        events: list[Any] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = delta if isinstance(delta := choice.get("delta"), dict) else {}
            thought = delta.get("reasoning_content")
            if isinstance(thought, str) and thought:
                events += self.on_reasoning(thought)
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self.on_text(text)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    function = function if isinstance(function := call.get("function"), dict) else {}
                    events += self.on_tool_call(call.get("index", 0), call, function)
            if choice.get("finish_reason"):
                self.on_finish(choice["finish_reason"])
        return events

    def on_reasoning(self, text: str) -> list[Any]:
        raise NotImplementedError

    def on_text(self, text: str) -> list[Any]:
        raise NotImplementedError

    def on_tool_call(self, position: int, call: dict[str, Any], function: dict[str, Any]) -> list[Any]:
        raise NotImplementedError

    def on_finish(self, reason: str) -> None:
        raise NotImplementedError
