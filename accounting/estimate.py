"""Token estimates for streams that ended without the upstream's usage (client hang-up, upstream
break, a provider that never reports usage). Such events are marked `usage_source = "estimated"`.

- OpenAI-family models (any id tiktoken maps to cl100k_base or o200k_base, e.g. gpt-4o-mini,
  gpt-4.1, o3, gpt-5, `openai/gpt-4o`): exact tiktoken counts of the text, offline
  (accounting/tokens.py), and OpenAI's cookbook rule for chat prompts: 3 tokens per message plus its
  role and content (+1 for a `name`), plus 3 that prime the reply.
- Every other model (Claude, Gemini, Llama, Grok, …, whose tokenizers are not public or not
  shipped): ~4 characters per token, OpenAI's published rule of thumb for English text, and 4 tokens
  of overhead per message. Expect ±25% on English prose and more on code or other scripts.

Completion tokens are counted on the text the client was actually sent (content, reasoning content,
tool-call names and arguments), so a hang-up is billed for what was generated and relayed, once.
Images, audio and tool schemas in the request are not counted (a lower bound).
"""

import math

from . import tokens

CHARS_PER_TOKEN = 4.0
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per message, approximation path
TIKTOKEN_TOKENS_PER_MESSAGE = 3  # OpenAI cookbook (gpt-3.5-turbo-0613 and later, gpt-4o)
TIKTOKEN_TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>


def approximate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_text_tokens(text: str, model: str = "") -> int:
    if not text:
        return 0
    encoding = tokens.for_model(model) if model else None
    if encoding is not None:
        return len(encoding.encode_ordinary(text))
    return approximate_text_tokens(text)


def _message_texts(message: dict) -> list[str]:
    texts = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    for call in message.get("tool_calls") or ():
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            function = call["function"]
            texts.append(str(function.get("name") or ""))
            texts.append(str(function.get("arguments") or ""))
    return texts


def estimate_prompt_tokens(messages: list, model: str = "") -> int:
    encoding = tokens.for_model(model) if model else None
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        if not isinstance(message, dict):
            continue
        texts = _message_texts(message)
        if encoding is not None:
            total += TIKTOKEN_TOKENS_PER_MESSAGE
            role = message.get("role")
            if isinstance(role, str):
                texts.append(role)
            name = message.get("name")
            if isinstance(name, str):
                total += TIKTOKEN_TOKENS_PER_NAME
                texts.append(name)
            total += sum(len(encoding.encode_ordinary(text)) for text in texts if text)
        else:
            total += MESSAGE_OVERHEAD_TOKENS + sum(approximate_text_tokens(text) for text in texts)
    return total


def method(model: str) -> str:
    """How `model`'s tokens are estimated: 'tiktoken:<encoding>' or 'chars/4'."""
    name = tokens.encoding_name(model) if model else None
    if name and tokens.get_encoding(name) is not None:
        return f"tiktoken:{name}"
    return "chars/4"
