"""Token estimates for streams that ended without the upstream's usage (client hang-up, upstream
break, a provider that never reports usage). Such events are marked `usage_source = "estimated"`.

- OpenAI-family models (any id tiktoken maps to cl100k_base or o200k_base, e.g. gpt-4o-mini,
  gpt-4.1, o3, gpt-5, `openai/gpt-4o`): exact counts of the text (accounting/usage/tokens.py), and OpenAI's
  cookbook rule for chat prompts: 3 tokens per message plus its role and content (+1 for a `name`),
  plus 3 that prime the reply.
- Every other model (Claude, Gemini, Llama, Grok, …, whose tokenizers are not public or not
  shipped): ~4 characters per token, OpenAI's published rule of thumb for English text, and 4 tokens
  of overhead per message. Expect ±25% on English prose and more on code or other scripts.

Completion tokens are counted on the text the client was actually sent (content, reasoning content,
tool-call names and arguments), so a hang-up is billed for what was generated and relayed, once.
Images, audio and tool schemas in the request are not counted (a lower bound).

Where it runs: tokenizing costs CPU that grows with a client's input, so the gateway's event loop never does it. The
gateway puts a bounded pending estimate on the usage event (`pending()`: the first MAX_CHARS characters of the
prompt's texts and of the relayed text, and their full lengths); whoever reads the event — the drain, `/v1/usage` for
an undrained event (in a thread) — counts it with `count_pending()`. Text beyond MAX_CHARS is counted at the
token/character ratio of the counted part (exact for uniform text; within 1 % on the prose, code and scripts of the
test corpus). Until then the event carries the characters/4 approximation, which is what Prometheus and the live
dashboard feed show.
"""

import math
from typing import cast

from . import tokens
from .events import MAX_INT

CHARS_PER_TOKEN = 4.0
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per message, approximation path
TIKTOKEN_TOKENS_PER_MESSAGE = 3  # OpenAI cookbook (gpt-3.5-turbo-0613 and later, gpt-4o)
TIKTOKEN_TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3  # every reply is primed with <|start|>assistant<|message|>
MAX_CHARS = 64 * 1024  # per side (prompt, completion) carried on the event and tokenized exactly


def approximate_text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


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


def _prompt_parts(messages: list, counted: bool) -> tuple[int, list[str]]:
    """(fixed overhead tokens, the texts to count) of a chat prompt; `counted`: the tokenizer's rule."""
    overhead = REPLY_PRIMING_TOKENS
    texts: list[str] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        message_texts = _message_texts(message)
        if counted:
            overhead += TIKTOKEN_TOKENS_PER_MESSAGE
            role = message.get("role")
            if isinstance(role, str):
                message_texts.append(role)
            name = message.get("name")
            if isinstance(name, str):
                overhead += TIKTOKEN_TOKENS_PER_NAME
                message_texts.append(name)
        else:
            overhead += MESSAGE_OVERHEAD_TOKENS
        texts.extend(text for text in message_texts if text)
    return overhead, texts


def _head(texts: list[str], limit: int) -> list[str]:
    """The texts up to `limit` characters in all (the last one cut). O(limit + len(texts))."""
    head, room = [], limit
    for text in texts:
        if room <= 0:
            break
        head.append(text[:room])
        room -= len(head[-1])
    return head


def _scaled(counts: list[int], counted_chars: int, total_chars: int) -> int:
    tokens_counted = sum(counts)
    if counted_chars >= total_chars or counted_chars == 0:
        return tokens_counted
    return math.ceil(tokens_counted * total_chars / counted_chars)


# -- on the event loop: O(MAX_CHARS + number of messages), no tokenizer ---------------------------------

def pending(messages: list, relayed: list[str], relayed_chars: int, model: str) -> tuple[int, int, dict | None]:
    """(prompt tokens, completion tokens, pending estimate or None) for a stream cut without usage.

    Models without a tokenizer get their final characters/4 numbers here (len() only). OpenAI-family
    models get the approximation plus a pending-estimate dict for `count_pending` (bounded: MAX_CHARS per side).
    `relayed` may already be cut at MAX_CHARS; `relayed_chars` is the full length.
    """
    encoding = tokens.encoding_name(model) if model else None
    overhead, texts = _prompt_parts(messages, counted=encoding is not None)
    if encoding is None:
        prompt = overhead + sum(approximate_text_tokens(text) for text in texts)
        return prompt, math.ceil(relayed_chars / CHARS_PER_TOKEN), None
    prompt_chars = sum(len(text) for text in texts)
    estimate = {"encoding": encoding, "overhead": overhead, "prompt": _head(texts, MAX_CHARS),
                "prompt_chars": prompt_chars, "completion": "".join(_head(relayed, MAX_CHARS)),
                "completion_chars": relayed_chars}
    return (overhead + math.ceil(prompt_chars / CHARS_PER_TOKEN), math.ceil(relayed_chars / CHARS_PER_TOKEN),
            estimate)


# -- off the loop (the drain, a thread) ------------------------------------------------------------------

def count_pending(estimate) -> tuple[int, int] | None:
    """(prompt tokens, completion tokens) of a `pending()` estimate read back from the stream; None
    if it is malformed or names no encoding we have (the event keeps its approximation)."""
    if not isinstance(estimate, dict) or estimate.get("encoding") not in tokens.ENCODINGS:
        return None
    prompt = [text for text in estimate.get("prompt") or () if isinstance(text, str) and text]
    prompt = _head(prompt, MAX_CHARS)  # bounded whoever wrote it
    completion = estimate.get("completion")
    completion = completion[:MAX_CHARS] if isinstance(completion, str) else ""
    numbers = [estimate.get(k) for k in ("overhead", "prompt_chars", "completion_chars")]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        return None
    overhead, prompt_chars, completion_chars = cast(list[int], numbers)  # all ints: checked above
    counts = tokens.count(prompt + [completion], estimate["encoding"])
    prompt_tokens = overhead + _scaled(counts[:-1], sum(len(t) for t in prompt), prompt_chars)
    return prompt_tokens, _scaled(counts[-1:], len(completion), completion_chars)


def settle(event):
    """A decoded StreamEvent (accounting/usage/events.py) with its pending estimate counted: the drain
    and /v1/usage call this in their thread; an event loop must not."""
    if event.estimate is None:
        return event
    counted = count_pending(event.estimate)
    if counted is None:
        return event.replace(estimate=None)
    prompt, completion = (min(n, MAX_INT) for n in counted)
    return event.replace(prompt_tokens=prompt, completion_tokens=completion,
                         total_tokens=min(MAX_INT, prompt + completion), estimate=None)


def estimate_text_tokens(text: str, model: str = "") -> int:
    """Exact for OpenAI-family models, else characters/4 (the drain's and the tests' direct use)."""
    if not text:
        return 0
    encoding = tokens.encoding_name(model) if model else None
    if encoding is not None:
        return tokens.count([text], encoding)[0]
    return approximate_text_tokens(text)


def estimate_prompt_tokens(messages: list, model: str = "") -> int:
    encoding = tokens.encoding_name(model) if model else None
    overhead, texts = _prompt_parts(messages, counted=encoding is not None)
    if encoding is None:
        return overhead + sum(approximate_text_tokens(text) for text in texts)
    return overhead + sum(tokens.count(texts, encoding)) if texts else overhead


def method(model: str) -> str:
    """How `model`'s tokens are estimated: 'tiktoken:<encoding>' (exact, tiktoken's encodings) or 'chars/4'."""
    name = tokens.encoding_name(model) if model else None
    return f"tiktoken:{name}" if name else "chars/4"
