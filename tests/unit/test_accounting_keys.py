"""accounting.tenants.keys: team API keys are sk_gom_ + 43 url-safe characters; only the SHA-256 is stored."""

import hashlib
import re

from accounting.tenants.keys import KEY_PREFIX, display_prefix, generate_key, hash_key

KEY_RE = re.compile(r"^sk_gom_[A-Za-z0-9_-]{43}$")


def test_generated_keys_have_the_documented_shape_and_are_unique():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(KEY_RE.match(k) for k in keys)
    assert KEY_PREFIX == "sk_gom_"


def test_hash_is_hex_sha256():
    assert hash_key("sk_gom_abc") == hashlib.sha256(b"sk_gom_abc").hexdigest()
    assert len(hash_key(generate_key())) == 64
    assert hash_key("a") != hash_key("b")


def test_display_prefix_shows_the_last_four_characters_only():
    key = "sk_gom_" + "A" * 39 + "wxyz"
    assert display_prefix(key) == "sk_gom_…wxyz"
    assert len(display_prefix(generate_key())) == len("sk_gom_…") + 4
