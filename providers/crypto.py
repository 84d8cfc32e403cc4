"""Provider keys are stored Fernet-encrypted with GOMODEL_ENCRYPTION_KEYS (newest first; see settings):
the newest key encrypts, every listed key decrypts (MultiFernet), so keys can be rotated without
re-entering provider keys (`manage.py rotate_provider_keys` then re-encrypts with the newest).

Rows written before separate encryption keys existed were encrypted with a key derived from
DJANGO_SECRET_KEY (or from its old public default): those still decrypt, and rotating moves them on."""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

LEGACY_PUBLIC_SECRET = "dev-insecure-change-me-gomodel"


def _derived(secret: str) -> Fernet:
    digest = hashlib.sha256(b"gomodel-provider-keys:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@lru_cache(maxsize=8)
def _multi(keys: tuple[str, ...], secret: str) -> MultiFernet:
    legacy = [_derived(secret)] + ([_derived(LEGACY_PUBLIC_SECRET)] if secret != LEGACY_PUBLIC_SECRET else [])
    return MultiFernet([Fernet(key.encode()) for key in keys] + legacy)


def _fernet() -> MultiFernet:
    return _multi(tuple(settings.GOMODEL_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("provider key cannot be decrypted with the configured encryption keys") from exc


def rotate(token: str) -> str:
    """The same secret, encrypted with the newest key; ValueError if no configured key decrypts it."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("provider key cannot be decrypted with the configured encryption keys") from exc


def redact(plaintext: str) -> str:
    if not plaintext:
        return ""
    return f"…{plaintext[-4:]}" if len(plaintext) > 8 else "…"
