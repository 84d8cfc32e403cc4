"""Exact token counts for OpenAI-family models, offline, with toktok-rs.

toktok-rs compiles OpenAI's cl100k_base and o200k_base vocabularies into its extension module and
counts in Rust: the vocabulary lives outside the Python heap (the garbage collector never walks it;
tiktoken's ~300k Python objects per process made every full collection cost ~75 ms), no token ids
are built, and counting releases the GIL. Its counts equal tiktoken's on the same encoding
(tests/accounting/test_estimate.py).

Only the usage drain (Celery) counts, when it stores a stream that ended without the upstream's usage
(accounting/usage/estimate.py), and `/v1/usage` for such an event not drained yet (in its thread); the
gateway's event loop never does. An encoding is loaded on first use
(~0.4 s and ~65 MB for o200k, ~45 MB for cl100k, in that process only).

The model → encoding map is tiktoken's (`tiktoken.model`), after dropping a `vendor/` prefix
(`openai/gpt-4o`), for the encodings toktok ships.
"""

import toktok

# tiktoken.model.MODEL_TO_ENCODING / MODEL_PREFIX_TO_ENCODING (tiktoken 0.14), cl100k/o200k entries.
MODEL_TO_ENCODING = {
    "o1": "o200k_base", "o3": "o200k_base", "o4-mini": "o200k_base", "gpt-5": "o200k_base",
    "gpt-4.1": "o200k_base", "gpt-4o": "o200k_base", "gpt-4": "cl100k_base", "gpt-3.5-turbo": "cl100k_base",
    "gpt-3.5": "cl100k_base", "gpt-35-turbo": "cl100k_base", "davinci-002": "cl100k_base",
    "babbage-002": "cl100k_base", "text-embedding-ada-002": "cl100k_base",
    "text-embedding-3-small": "cl100k_base", "text-embedding-3-large": "cl100k_base",
}
MODEL_PREFIX_TO_ENCODING = {
    "o1-": "o200k_base", "o3-": "o200k_base", "o4-mini-": "o200k_base", "gpt-5": "o200k_base",
    "gpt-4.5-": "o200k_base", "gpt-4.1-": "o200k_base", "chatgpt-4o-": "o200k_base", "gpt-4o-": "o200k_base",
    "gpt-4-": "cl100k_base", "gpt-3.5-turbo-": "cl100k_base", "gpt-35-turbo-": "cl100k_base",
    "gpt-oss-": "o200k_base",  # o200k_harmony: the same counts for ordinary text, one vocabulary loaded
    "ft:gpt-4o": "o200k_base", "ft:gpt-4": "cl100k_base", "ft:gpt-3.5-turbo": "cl100k_base",
    "ft:davinci-002": "cl100k_base", "ft:babbage-002": "cl100k_base",
}
ENCODINGS = ("o200k_base", "cl100k_base")


def encoding_name(model: str) -> str | None:
    """The encoding of an OpenAI model id (tiktoken's map), or None for anything else."""
    name = model.rsplit("/", 1)[-1] if model else ""
    if not name:
        return None
    encoding = MODEL_TO_ENCODING.get(name)
    if encoding is None:
        encoding = next((enc for prefix, enc in MODEL_PREFIX_TO_ENCODING.items() if name.startswith(prefix)), None)
    return encoding


def count(texts: list[str], encoding: str) -> list[int]:
    """Tokens in each text (ordinary text: special-token strings count as the text they are)."""
    if encoding not in ENCODINGS:
        raise KeyError(encoding)
    return toktok.batch_count(texts, encoding, threads=1)
