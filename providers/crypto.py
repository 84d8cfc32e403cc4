"""Provider keys are stored Fernet-encrypted; the key comes from GOMODEL_ENCRYPTION_KEY or, failing
that, is derived from DJANGO_SECRET_KEY (so rotating the secret key means re-entering provider keys)."""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    configured = settings.GOMODEL_ENCRYPTION_KEY
    if configured:
        return Fernet(configured.encode())
    digest = hashlib.sha256(b"gomodel-provider-keys:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


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
        raise ValueError("provider key cannot be decrypted with the configured encryption key") from exc


def redact(plaintext: str) -> str:
    if not plaintext:
        return ""
    return f"…{plaintext[-4:]}" if len(plaintext) > 8 else "…"
