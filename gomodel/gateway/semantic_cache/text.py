"""What of a request the semantic cache embeds, and what must match exactly.

Embedded: the last user turn, and the system prompt (SEMANTIC_CACHE_EMBED_SYSTEM; otherwise it is matched
exactly). Everything else — the earlier turns, tools, response_format, temperature, max_tokens, `stream`, the
resolved provider and model — goes into the scope, a hash a stored answer must share. So a semantic hit never
answers a request with other tools, another model or another history. A request whose last turn is not a user's
text (a tool result, an image) is not looked up semantically."""

import hashlib
from typing import Any

import orjson
from django.conf import settings

from ..response_cache import IGNORED_FIELDS, KEYED_HEADERS

FORMAT = "s1"  # in every scope: a change of what is embedded or hashed starts a new cache
SYSTEM_ROLES = ("system", "developer")


def _plain(content: Any, part_types: tuple[str, ...]) -> str | None:
    """The text of a message's content: a string, or parts that are all text; None for anything else."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in part_types:
                return None
            if not isinstance(part.get("text"), str):
                return None
            texts.append(part["text"])
        return "\n".join(texts)
    return None


def split_chat(body: dict, embed_system: bool) -> tuple[str, dict] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user" or (user := _plain(last.get("content"), ("text",))) is None:
        return None
    system, kept = [], []
    for message in messages[:-1]:
        if embed_system and isinstance(message, dict) and message.get("role") in SYSTEM_ROLES:
            text = _plain(message.get("content"), ("text",))
            if text is not None:
                system.append(text)
                continue
        kept.append(message)
    return "\n".join([*system, user]), {**body, "messages": kept}


def split_messages(body: dict, embed_system: bool) -> tuple[str, dict] | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return None
    last = messages[-1]
    if last.get("role") != "user" or (user := _plain(last.get("content"), ("text",))) is None:
        return None
    rest = {**body, "messages": messages[:-1]}
    parts = [user]
    if embed_system and body.get("system") is not None:
        system = _plain(body["system"], ("text",))
        if system is None:
            return None
        parts.insert(0, system)
        rest.pop("system")
    return "\n".join(parts), rest


def split_responses(body: dict, embed_system: bool) -> tuple[str, dict] | None:
    value = body.get("input")
    rest = dict(body)
    user: str | None = None
    if isinstance(value, str):
        user, rest["input"] = value, None
    elif isinstance(value, list) and value and isinstance(value[-1], dict) and value[-1].get("role") == "user":
        user = _plain(value[-1].get("content"), ("input_text",))
        rest["input"] = value[:-1]
    if user is None:
        return None
    parts = [user]
    if embed_system and isinstance(body.get("instructions"), str):
        parts.insert(0, rest.pop("instructions"))
    return "\n".join(parts), rest


SPLITTERS = {"/v1/chat/completions": split_chat, "/v1/messages": split_messages, "/v1/responses": split_responses}


def split(endpoint: str, body: dict, embed_system: bool) -> tuple[str, dict] | None:
    """(the text to embed, the rest of the body) — None: this request is not looked up semantically (embeddings,
    count_tokens, a last turn that is not user text)."""
    splitter = SPLITTERS.get(endpoint)
    return splitter(body, embed_system) if splitter is not None else None


def scope(endpoint: str, tenant_id, target, model: str, embed_model: str, rest: dict, headers) -> str:
    """The hash a stored answer and a request must share: everything but the embedded text, and the exact
    cache's prefix (another prefix, another cache) (the model as
    resolved, not as named: `gpt-4o-mini` and `groq/gpt-4o-mini` routed alike share it)."""
    skipped = (*IGNORED_FIELDS, "model", "provider")
    body = {name: value for name, value in rest.items() if name not in skipped}
    digest = hashlib.sha256()
    for part in (FORMAT, settings.RESPONSE_CACHE_PREFIX, endpoint, str(tenant_id), target.name, target.base_url,
                 model, embed_model,
                 *(f"{name}={(headers.get(name.encode()) or b'').decode('latin-1')}" for name in KEYED_HEADERS)):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()
