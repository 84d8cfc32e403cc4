"""What each OpenAI-format provider needs changed in an otherwise forwarded body.

The seed's `reasoning: {effort}` is not OpenAI's chat API (it takes a flat `reasoning_effort`), so it is
rewritten per provider, with levels a provider lacks moved to the nearest one it has.
"""

import os
import re
from typing import Any

EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_O_SERIES = re.compile(r"^o\d")  # o1, o3-mini, o4-mini ...
_GPT = re.compile(r"^gpt-(\d+)(?:\.(\d+))?")
MINIMAX_MIN_TEMPERATURE = 0.01  # MiniMax takes (0, 1]; 0 means "as deterministic as possible"


def is_openai_reasoning_model(model: str) -> bool:
    """o-series and gpt-5*: max_completion_tokens instead of max_tokens, and no temperature."""
    name = model.lower().rsplit("/", 1)[-1]
    match = _GPT.match(name)
    return bool(_O_SERIES.match(name)) or bool(match and int(match.group(1)) >= 5)


def openai_effort_levels(model: str) -> tuple[str, ...] | None:
    """The reasoning_effort values an OpenAI model accepts, or None when unknown (passed as is)."""
    name = model.lower().rsplit("/", 1)[-1]
    if _O_SERIES.match(name):
        return ("low", "medium", "high")
    match = _GPT.match(name)
    if not match or int(match.group(1)) < 5:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if (major, minor) == (5, 0):
        return ("minimal", "low", "medium", "high")
    if (major, minor) == (5, 1):
        return ("none", "low", "medium", "high")
    return ("none", "low", "medium", "high", "xhigh")


def nearest_effort(effort: str, levels: tuple[str, ...] | None) -> str:
    """A level the model lacks becomes the closest it has: below its range rounds up, above rounds down."""
    if levels is None or effort in levels or effort not in EFFORT_ORDER:
        return effort
    rank = EFFORT_ORDER.index(effort)
    higher = [level for level in levels if EFFORT_ORDER.index(level) > rank]
    return higher[0] if higher and EFFORT_ORDER.index(levels[-1]) > rank else levels[-1]


def _take_effort(body: dict[str, Any]) -> str | None:
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and isinstance(effort := reasoning.get("effort"), str):
        body.pop("reasoning")
        return effort
    return None


def _openai(body: dict[str, Any], model: str) -> None:
    effort = _take_effort(body)
    if effort is None and isinstance(body.get("reasoning_effort"), str):
        effort = body["reasoning_effort"]
    if effort is not None:
        body["reasoning_effort"] = nearest_effort(effort, openai_effort_levels(model))
    if is_openai_reasoning_model(model):
        _developer_role(body)
        if "max_tokens" in body:
            max_tokens = body.pop("max_tokens")
            body.setdefault("max_completion_tokens", max_tokens)
        body.pop("temperature", None)


def _developer_role(body: dict[str, Any]) -> None:
    """OpenAI's reasoning models (o-series, gpt-5*) take operator instructions as `developer` messages,
    wherever they stand in the conversation. The list and messages are copied, never changed in place (a
    translated body is shared by the failover candidates)."""
    messages = body.get("messages")
    if isinstance(messages, list) and any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
        body["messages"] = [{**m, "role": "developer"} if isinstance(m, dict) and m.get("role") == "system" else m
                            for m in messages]


def _deepseek(body: dict[str, Any], model: str) -> None:
    effort = _take_effort(body)
    if effort is not None:
        # DeepSeek takes two levels: "high" and "max".
        body["reasoning_effort"] = "max" if effort in ("xhigh", "max") else "high"


def _openrouter(body: dict[str, Any], model: str) -> None:
    # OpenRouter takes `reasoning: {effort}` natively (up to "xhigh").
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") == "max":
        body["reasoning"] = {**reasoning, "effort": "xhigh"}


def _minimax(body: dict[str, Any], model: str) -> None:
    _generic(body, model)
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)) and temperature <= 0:
        body["temperature"] = MINIMAX_MIN_TEMPERATURE


def _generic(body: dict[str, Any], model: str) -> None:
    effort = _take_effort(body)
    if effort is not None:
        body["reasoning_effort"] = nearest_effort(effort, ("low", "medium", "high"))


BODY_QUIRKS = {
    "openai": _openai,
    "deepseek": _deepseek,
    "openrouter": _openrouter,
    "minimax": _minimax,
}


def adapt_body(body: dict[str, Any], provider_type: str, model: str) -> None:
    BODY_QUIRKS.get(provider_type, _generic)(body, model)


def extra_headers(provider_type: str) -> dict[str, str]:
    if provider_type == "openrouter":
        # OpenRouter attributes traffic to an app by these two headers.
        return {
            "http-referer": os.environ.get("OPENROUTER_SITE_URL", "https://github.com/ENTERPILOT/GoModel"),
            "x-title": os.environ.get("OPENROUTER_APP_NAME", "GoModel"),
        }
    return {}
