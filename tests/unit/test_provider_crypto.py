"""providers.crypto: provider keys are Fernet-encrypted at rest."""

import pytest
from cryptography.fernet import Fernet

from providers import crypto


@pytest.fixture(autouse=True)
def fresh_fernet():
    crypto._fernet.cache_clear()
    yield
    crypto._fernet.cache_clear()


def test_round_trip_and_randomised_ciphertext():
    one, two = crypto.encrypt("sk-secret-1234"), crypto.encrypt("sk-secret-1234")
    assert one != two and "sk-secret" not in one
    assert crypto.decrypt(one) == crypto.decrypt(two) == "sk-secret-1234"


def test_empty_stays_empty():
    assert crypto.encrypt("") == "" and crypto.decrypt("") == ""


def test_configured_encryption_key_is_used(settings):
    key = Fernet.generate_key()
    settings.GOMODEL_ENCRYPTION_KEY = key.decode()
    token = crypto.encrypt("sk-x")
    assert Fernet(key).decrypt(token.encode()) == b"sk-x"


def test_a_token_from_another_key_cannot_be_decrypted(settings):
    token = crypto.encrypt("sk-x")
    settings.GOMODEL_ENCRYPTION_KEY = Fernet.generate_key().decode()
    crypto._fernet.cache_clear()
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.decrypt(token)


@pytest.mark.parametrize("plaintext, shown", [("sk-abcdefgh1234", "…1234"), ("short", "…"), ("", "")])
def test_redact(plaintext, shown):
    assert crypto.redact(plaintext) == shown
