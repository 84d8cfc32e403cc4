"""OpenAI embeddings request -> Gemini `batchEmbedContents`, and the answer back.

Wire format: https://ai.google.dev/api/embeddings (batchEmbedContents: `requests[]` of
EmbedContentRequest {model, content, outputDimensionality}; answer `embeddings[].values`).
Gemini reports no token counts here, so the gateway bills such calls on an estimate.
"""

import base64
import struct
from typing import Any
from urllib.parse import quote

import orjson

from ..base import Target, UpstreamError, UpstreamRequest, Usage
from .request import auth_headers


def build_embeddings_request(body: dict[str, Any], target: Target, model: str) -> UpstreamRequest:
    model = model.removeprefix("models/")
    value = body["input"]
    texts = [value] if isinstance(value, str) else value
    if not all(isinstance(text, str) for text in texts):
        raise UpstreamError(400, "Gemini embeds text only: send 'input' as a string or an array of strings.",
                            param="input", code="invalid_value")
    dimensions = body.get("dimensions")
    requests = []
    for text in texts:
        item = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            item["outputDimensionality"] = dimensions
        requests.append(item)
    url = f"{target.base_url}/models/{quote(model, safe='-._~')}:batchEmbedContents"
    return UpstreamRequest("POST", url, auth_headers(target), orjson.dumps({"requests": requests}))


def parse_embeddings_response(raw: bytes, model: str,
                              encoding_format: str | None = None) -> tuple[dict[str, Any], Usage | None]:
    data = orjson.loads(raw)
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    if not isinstance(embeddings, list):
        raise ValueError("a batchEmbedContents answer needs an 'embeddings' array")
    items = []
    for index, embedding in enumerate(embeddings):
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list):
            raise ValueError(f"embeddings[{index}] has no 'values'")
        if encoding_format == "base64":  # what OpenAI sends: little-endian float32, base64
            values = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        items.append({"object": "embedding", "index": index, "embedding": values})
    return {"object": "list", "data": items, "model": model}, None
