"""Encryption at rest of subscribers' ``hub.secret`` with the hub's symmetric KMS key.

Each secret is bound to its (topic, callback) by the KMS encryption context, so a
ciphertext copied onto another subscription does not decrypt. Decryptions are cached
per container: the dispatcher reads the same subscriptions for every event, and one
KMS call per subscription per container is enough.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from sethub.errors import ConfigurationError, UpstreamError, aws_error_code
from sethub.subscriptions import subscription_id

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

CACHE_SIZE = 10_000


def encryption_context(topic: str, callback: str) -> dict[str, str]:
    """Binds a ciphertext to its subscription. Hashed: KMS writes the context to CloudTrail in
    clear, and callback URLs may carry tokens (and may be longer than a context should be)."""
    return {"sethub:subscription": subscription_id(topic, callback)}


class SecretBox:
    """``encrypt``/``decrypt`` through KMS; thread-safe, with a bounded decryption cache."""

    def __init__(self, kms_client: KMSClient, key_id: str, *, cache_size: int = CACHE_SIZE) -> None:
        self._kms = kms_client
        self._key_id = key_id
        self._cache: OrderedDict[tuple[bytes, tuple[tuple[str, str], ...]], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    def encrypt(self, secret: bytes, context: dict[str, str]) -> bytes:
        if not self._key_id:
            raise ConfigurationError("SETHUB_DATA_KEY_ID is not set")
        try:
            result = self._kms.encrypt(KeyId=self._key_id, Plaintext=secret, EncryptionContext=context)
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(
                f"KMS could not encrypt a subscription secret: {aws_error_code(exc)}"
            ) from exc
        return result["CiphertextBlob"]

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> bytes:
        key = (ciphertext, tuple(sorted(context.items())))
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            # Naming the key makes KMS refuse a ciphertext made under any other key.
            if self._key_id:
                result = self._kms.decrypt(
                    CiphertextBlob=ciphertext, EncryptionContext=context, KeyId=self._key_id
                )
            else:
                result = self._kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)
        except (ClientError, BotoCoreError) as exc:
            raise UpstreamError(
                f"KMS could not decrypt a subscription secret: {aws_error_code(exc)}"
            ) from exc
        plaintext = result["Plaintext"]
        with self._lock:
            self._cache[key] = plaintext
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return plaintext
