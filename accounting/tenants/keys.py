"""Team API keys: `sk_gom_` + 43 url-safe characters; only the SHA-256 is ever stored."""

import hashlib
import secrets

KEY_PREFIX = "sk_gom_"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 32 bytes -> 43 url-safe characters


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def display_prefix(plaintext: str) -> str:
    return f"{KEY_PREFIX}…{plaintext[-4:]}"
