"""What the semantic cache embeds and what it matches exactly (gomodel/gateway/semantic_cache/text.py)."""

from types import SimpleNamespace

from gomodel.gateway.semantic_cache.text import scope, split

CHAT = "/v1/chat/completions"
TARGET = SimpleNamespace(name="groq", base_url="http://upstream")


def chat(*messages, **extra):
    return {"model": "gpt-4o-mini", "messages": list(messages), **extra}


def user(text):
    return {"role": "user", "content": text}


def scope_of(body, tenant=1, model="gpt-4o-mini", endpoint=CHAT, headers=None):
    said, rest = split(endpoint, body, True)
    return scope(endpoint, tenant, TARGET, model, "openai/embed", rest, headers or {})


def test_chat_embeds_the_system_prompt_and_the_last_user_turn_only():
    body = chat({"role": "system", "content": "Be brief."}, user("first"), {"role": "assistant", "content": "ok"},
                user([{"type": "text", "text": "second"}]))
    said, rest = split(CHAT, body, True)
    assert said == "Be brief.\nsecond"
    assert rest["messages"] == [user("first"), {"role": "assistant", "content": "ok"}]  # the history: matched exactly
    said, rest = split(CHAT, body, False)  # the system prompt matched exactly instead
    assert said == "second" and rest["messages"][0] == {"role": "system", "content": "Be brief."}


def test_what_is_not_looked_up_semantically():
    assert split(CHAT, chat(user("q"), {"role": "tool", "tool_call_id": "1", "content": "42"}), True) is None
    image = [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    assert split(CHAT, chat(user(image)), True) is None
    assert split("/v1/embeddings", {"model": "e", "input": "hello"}, True) is None
    assert split("/v1/messages/count_tokens", {"model": "m", "messages": [user("hi")]}, True) is None


def test_messages_and_responses():
    said, rest = split("/v1/messages", {"model": "m", "system": "Be brief.", "max_tokens": 9,
                                         "messages": [user("hi")]}, True)
    assert said == "Be brief.\nhi" and rest == {"model": "m", "max_tokens": 9, "messages": []}
    said, rest = split("/v1/responses", {"model": "m", "instructions": "Be brief.", "input": "hi"}, True)
    assert said == "Be brief.\nhi" and rest == {"model": "m", "input": None}
    said, _ = split("/v1/responses", {"model": "m", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}, True)
    assert said == "hi"


def test_the_scope_is_everything_but_the_embedded_text():
    base = scope_of(chat(user("What is the capital of France?")))
    assert scope_of(chat(user("capital of France, please"))) == base  # only the text differs
    assert scope_of(chat(user("q"), user="someone", metadata={"a": 1})) == scope_of(chat(user("q")))  # ignored
    assert scope_of(chat(user("q"), model="groq/gpt-4o-mini")) == scope_of(chat(user("q")))  # resolved alike
    different = [
        scope_of(chat(user("q")), tenant=2),
        scope_of(chat(user("q")), model="gpt-4o"),
        scope_of(chat(user("q"), tools=[{"type": "function", "function": {"name": "f"}}])),
        scope_of(chat(user("q"), temperature=0.5)),
        scope_of(chat(user("q"), response_format={"type": "json_object"})),
        scope_of(chat(user("q"), stream=True)),
        scope_of(chat(user("earlier"), {"role": "assistant", "content": "a"}, user("q"))),
        scope_of(chat(user("q")), headers={b"anthropic-beta": b"x"}),
    ]
    assert len({base, *different}) == len(different) + 1
