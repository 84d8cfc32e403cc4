"""providers.crypto: provider keys are Fernet-encrypted at rest with their own keys (not SECRET_KEY),
rotatable with MultiFernet."""

import pytest
from cryptography.fernet import Fernet, InvalidToken

from providers import crypto


def test_round_trip_and_randomised_ciphertext():
    one, two = crypto.encrypt("sk-secret-1234"), crypto.encrypt("sk-secret-1234")
    assert one != two and "sk-secret" not in one
    assert crypto.decrypt(one) == crypto.decrypt(two) == "sk-secret-1234"


def test_empty_stays_empty():
    assert crypto.encrypt("") == "" and crypto.decrypt("") == ""


def test_the_newest_configured_key_encrypts(settings):
    new, old = Fernet.generate_key(), Fernet.generate_key()
    settings.GOMODEL_ENCRYPTION_KEYS = [new.decode(), old.decode()]
    token = crypto.encrypt("sk-x")
    assert Fernet(new).decrypt(token.encode()) == b"sk-x"


def test_the_secret_key_alone_does_not_decrypt(settings):
    """The old scheme derived the key from SECRET_KEY: a leaked or public secret key gave the provider
    keys away. Now a token made with the encryption key does not open with the secret-derived one."""
    token = crypto.encrypt("sk-x")
    with pytest.raises(InvalidToken):
        crypto._derived(settings.SECRET_KEY).decrypt(token.encode())
    with pytest.raises(InvalidToken):
        crypto._derived(crypto.LEGACY_PUBLIC_SECRET).decrypt(token.encode())


def test_a_token_from_another_key_cannot_be_decrypted(settings):
    token = crypto.encrypt("sk-x")
    settings.GOMODEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.decrypt(token)


def test_rotation_old_keys_decrypt_and_rotate_moves_to_the_newest(settings):
    old = Fernet.generate_key().decode()
    settings.GOMODEL_ENCRYPTION_KEYS = [old]
    token = crypto.encrypt("sk-rotate-me")
    new = Fernet.generate_key().decode()
    settings.GOMODEL_ENCRYPTION_KEYS = [new, old]
    assert crypto.decrypt(token) == "sk-rotate-me"
    rotated = crypto.rotate(token)
    settings.GOMODEL_ENCRYPTION_KEYS = [new]
    assert crypto.decrypt(rotated) == "sk-rotate-me"
    with pytest.raises(ValueError):
        crypto.decrypt(token)


def test_rows_from_the_secret_derived_scheme_still_decrypt(settings):
    legacy = crypto._derived(settings.SECRET_KEY).encrypt(b"sk-legacy").decode()
    assert crypto.decrypt(legacy) == "sk-legacy"
    public = crypto._derived(crypto.LEGACY_PUBLIC_SECRET).encrypt(b"sk-public").decode()
    assert crypto.decrypt(public) == "sk-public"


@pytest.mark.parametrize("plaintext, shown", [("sk-abcdefgh1234", "…1234"), ("short", "…"), ("", "")])
def test_redact(plaintext, shown):
    assert crypto.redact(plaintext) == shown
