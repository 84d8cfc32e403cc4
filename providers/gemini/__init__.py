"""Google Gemini's native API (generateContent), spoken to as if it were OpenAI chat completions.

Pure functions: `build_chat_request` turns an OpenAI chat request into
`POST {base}/models/{model}:generateContent` (or `:streamGenerateContent?alt=sse`), `parse_chat_response`
turns a GenerateContentResponse back into a chat.completion, `StreamParser` turns the SSE events into
chat.completion.chunk dicts, and `build_models_request`/`parse_models` list `GET {base}/models`;
`build_embeddings_request` / `parse_embeddings_response` speak `batchEmbedContents`.
"""

from .embeddings import build_embeddings_request, parse_embeddings_response  # noqa: F401
from .request import auth_headers, build_chat_request, build_models_request, build_payload  # noqa: F401
from .response import parse_chat_response, parse_models  # noqa: F401
from .stream import StreamParser  # noqa: F401

__all__ = ["build_embeddings_request", "parse_embeddings_response", "auth_headers", "build_chat_request",
           "build_models_request", "build_payload", "parse_chat_response", "parse_models", "StreamParser",
           "supports_embeddings"]

supports_embeddings = True
