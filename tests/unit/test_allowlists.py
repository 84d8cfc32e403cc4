"""Model allow-lists (accounting/limits/allowlists.py) and the rate-limit headers' formatting, as pure functions."""

from collections import namedtuple

import pytest

from accounting.limits.allowlists import AllowList, AllowListError, parse_lines, permitted, validate_entries
from accounting.limits.ratelimits import Outcome
from gomodel.gateway.limits import chat_tokens, duration, rate_headers

T = namedtuple("T", "name")
OPENAI, ANTHROPIC, ROUTER = T("openai"), T("anthropic"), T("openrouter")


@pytest.mark.parametrize("entries, cleaned", [
    ([" openai/gpt-4o ", "anthropic/*", "smart", "openai/gpt-4o"], ["openai/gpt-4o", "anthropic/*", "smart"]),
    (["openrouter/meta-llama/llama-3.1-8b-instruct"], ["openrouter/meta-llama/llama-3.1-8b-instruct"]),
    ([], []),
    (None, []),
])
def test_valid_entries_are_cleaned(entries, cleaned):
    assert validate_entries(entries) == cleaned


@pytest.mark.parametrize("entries", [
    "openai/*", ["*"], ["openai/gpt*"], ["op en/x"], ["/gpt-4o"], ["openai/"], [""], ["   "], [3], ["a" * 256],
    ["ok"] * 501, ["open.ai/x"],
])
def test_invalid_entries_are_refused(entries):
    with pytest.raises(AllowListError):
        validate_entries(entries)


def test_admin_text_lines_and_commas():
    assert parse_lines("openai/*\n anthropic/claude-sonnet-4, smart\n\n") == [
        "openai/*", "anthropic/claude-sonnet-4", "smart"]


def test_exact_wildcard_and_name_matching():
    allow = AllowList(["openai/gpt-4o-mini", "anthropic/*", "smart"])
    assert allow.allows_target("openai", "gpt-4o-mini") and not allow.allows_target("openai", "gpt-4o")
    assert allow.allows_target("anthropic", "claude-sonnet-4")
    assert allow.allows_name("smart") and not allow.allows_name("gpt-4o-mini")
    assert not AllowList([]) and AllowList(["x"])


def test_permitted_filters_the_chain_and_both_lists_must_allow():
    chain = [(OPENAI, "gpt-4o-mini"), (ANTHROPIC, "claude-sonnet-4")]
    key, tenant = AllowList(["anthropic/*"]), AllowList([])
    assert permitted([key, tenant], "gpt-4o-mini", False, chain) == [(ANTHROPIC, "claude-sonnet-4")]  # failover kept
    assert permitted([AllowList(["openai/*"]), AllowList(["anthropic/*"])], "gpt-4o-mini", False, chain) == []
    # A listed requested name (a virtual model) allows where it routes, unless a provider hint redirects it.
    assert permitted([AllowList(["smart"])], "smart", False, chain) == chain
    assert permitted([AllowList(["smart"])], "smart", True, chain) == []
    assert permitted([AllowList([]), AllowList([])], "x", False, chain) == chain


@pytest.mark.parametrize("ms, text", [(0, "0ms"), (20, "20ms"), (1000, "1s"), (6500, "6.5s"), (60_000, "1m0s"),
                                      (90_250, "1m30.25s")])
def test_duration_is_openai_style(ms, text):
    assert duration(ms) == text


def test_headers_name_the_scope_with_the_least_left():
    state_key = {"requests": {"limit": 10, "remaining": 7, "reset_ms": 60_000}, "tokens": None, "concurrency": None}
    state_tenant = {"requests": {"limit": 100, "remaining": 3, "reset_ms": 30_000},
                    "tokens": {"limit": 5000, "remaining": 4000, "reset_ms": 1500}, "concurrency": None}
    headers = dict(rate_headers(Outcome(True, "", None, 0, [state_key, state_tenant])))
    assert headers == {b"x-ratelimit-limit-requests": b"100", b"x-ratelimit-remaining-requests": b"3",
                       b"x-ratelimit-reset-requests": b"30s", b"x-ratelimit-limit-tokens": b"5000",
                       b"x-ratelimit-remaining-tokens": b"4000", b"x-ratelimit-reset-tokens": b"1.5s"}


def test_chat_tokens_reserve_prompt_plus_max_tokens_or_the_default(settings):
    settings.LIMITS_DEFAULT_MAX_TOKENS = 1000
    body = {"messages": [{"role": "user", "content": "x" * 400}]}
    assert chat_tokens(body) == 3 + 4 + 100 + 1000
    assert chat_tokens({**body, "max_tokens": 50}) == 3 + 4 + 100 + 50
    assert chat_tokens({**body, "max_completion_tokens": 70, "max_tokens": 50}) == 3 + 4 + 100 + 70
