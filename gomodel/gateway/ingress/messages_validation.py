"""Request-body checks for /v1/messages and /v1/messages/count_tokens: the published schemas
(request_schema.py, `anthropic.*`, after Anthropic's Messages API reference), compiled once as chat's
are (validation.py). Bad input is a 400 naming the field, before any upstream call; block types and
fields the gateway does not know pass through untouched (an Anthropic target judges them)."""

from ..validation import Schema

MESSAGES = Schema("anthropic.MessagesRequest")
COUNT_TOKENS = Schema("anthropic.CountTokensRequest")
validate_messages = MESSAGES.check
validate_count_tokens = COUNT_TOKENS.check
