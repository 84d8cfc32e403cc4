"""The OpenAI chat-completions wire format, spoken by twelve of the fourteen seed providers."""

from .adapter import (  # noqa: F401
    StreamParser,
    build_chat_request,
    build_embeddings_request,
    build_models_request,
    parse_chat_response,
    parse_embeddings_response,
    parse_models,
)

__all__ = ["StreamParser", "build_chat_request", "build_embeddings_request", "build_models_request",
           "parse_chat_response", "parse_embeddings_response", "parse_models", "supports_embeddings"]

supports_embeddings = True
