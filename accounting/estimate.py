"""Token estimates for streams that ended without the upstream's usage (client hang-up, upstream
break). ~4 characters per token is OpenAI's published rule of thumb for English text; such events
are marked `usage_source = "estimated"` so they can be told apart from reported ones."""

import math

CHARS_PER_TOKEN = 4.0
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per message, as OpenAI's cookbook counts them


def estimate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(messages: list) -> int:
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += MESSAGE_OVERHEAD_TOKENS
        content = message.get("content")
        if isinstance(content, str):
            total += estimate_text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += estimate_text_tokens(part["text"])
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                total += estimate_text_tokens(str(call["function"].get("arguments") or ""))
    return total
