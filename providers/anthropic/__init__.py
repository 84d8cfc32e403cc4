"""Anthropic's Messages API, spoken to as if it were OpenAI chat completions.

Pure functions: `build_chat_request` turns an OpenAI chat request into `POST {base}/messages`,
`parse_chat_response` turns a Message back into a chat.completion, `StreamParser` turns Anthropic's
SSE events into chat.completion.chunk dicts, and the models pair lists `GET {base}/models`.
"""

from .request import ANTHROPIC_VERSION, auth_headers, build_chat_request, build_models_request  # noqa: F401
from .response import parse_chat_response, parse_models  # noqa: F401
from .stream import StreamParser  # noqa: F401

__all__ = ["ANTHROPIC_VERSION", "auth_headers", "build_chat_request", "build_models_request", "parse_chat_response",
           "parse_models", "StreamParser", "supports_embeddings"]

supports_embeddings = False  # Anthropic has no embeddings API
