"""Secrets at rest: Fernet (AES-128-CBC + HMAC) under a key from GITOPS_UI_ENCRYPTION_KEY.

Any string works as the setting; it is stretched to a Fernet key with SHA-256, so operators can
paste a random password. Losing the key makes stored credentials unreadable (never the data).
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted: GITOPS_UI_ENCRYPTION_KEY changed since it was saved."""


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def encrypt(plaintext: str) -> str:
    return _fernet(settings.ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _decrypted(settings.ENCRYPTION_KEY, token)
    except InvalidToken:
        raise SecretUnreadable("a stored secret cannot be decrypted with the current "
                               "GITOPS_UI_ENCRYPTION_KEY") from None


# Every load of a row decrypts its secrets again: the engine reads the same repository and
# cluster rows (a kubeconfig of several KB) for every job, so it remembers the last few answers,
# in this process's memory only, where the plaintext already lives on the model instances; it
# is never written anywhere. Bounded: at most 256 secrets. Keyed by the key and the token, so a
# new GITOPS_UI_ENCRYPTION_KEY is never answered from here, and a changed secret (a new token:
# Fernet tokens carry a random IV) is decrypted afresh. A token that fails raises: not remembered.
@lru_cache(maxsize=256)
def _decrypted(key: str, token: str) -> str:
    return _fernet(key).decrypt(token.encode()).decode()
