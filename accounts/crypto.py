"""Encryption at rest for broker credentials and access tokens (MultiFernet, keys rotate).

FERNET_KEYS lists keys newest first: the first encrypts, all of them decrypt, and
`manage.py rotate_fernet_keys` re-encrypts every stored value with the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def get_fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FERNET_KEYS))


def encrypt_text(plaintext: str) -> str:
    return get_fernet().encrypt(plaintext.encode()).decode()


def decrypt_text(ciphertext: str) -> str:
    try:
        return get_fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored secret cannot be decrypted with FERNET_KEYS") from exc


def rotate_ciphertext(ciphertext: str) -> str:
    """Re-encrypt with the newest key (MultiFernet.rotate)."""
    try:
        return get_fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("stored secret cannot be decrypted with FERNET_KEYS") from exc


class EncryptedTextField(models.TextField):
    """A text column that holds only Fernet ciphertext; Python code sees the plaintext."""

    description = "Text encrypted at rest with MultiFernet"

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt_text(value)

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        return encrypt_text(str(value))


if TYPE_CHECKING:
    # The model attribute is a dict (django-stubs would type a TextField's as a str).
    _JSONTextField = models.TextField[Mapping[str, object] | None, dict[str, Any]]
else:
    _JSONTextField = models.TextField


class EncryptedJSONField(_JSONTextField):
    """A JSON object encrypted at rest as one Fernet token."""

    description = "JSON encrypted at rest with MultiFernet"

    def from_db_value(self, value, expression, connection) -> dict[str, Any] | None:
        if value is None or value == "":
            return {} if value == "" else None
        return json.loads(decrypt_text(value))

    def to_python(self, value):
        if isinstance(value, dict) or value is None:
            return value
        return json.loads(value)

    def get_prep_value(self, value):
        if value is None:
            return None
        return encrypt_text(json.dumps(value, sort_keys=True))
