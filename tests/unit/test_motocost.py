"""devstack.motocost: moto's KMS still behaves as before once its symmetric keys' unused RSA
key is made on first use (the conftest installs it for the whole test process)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.kms import models

from devstack.motocost import lighten_moto
from sethub.clients import new_session


def _kms() -> Any:
    return new_session().create_client(
        "kms", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_symmetric_and_asymmetric_keys_work_as_before() -> None:
    lighten_moto()
    lighten_moto()  # idempotent
    with mock_aws():
        kms = _kms()
        data_key = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=data_key, Plaintext=b"secret", EncryptionContext={"p": "x"})[
            "CiphertextBlob"
        ]
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"p": "x"})["Plaintext"] == b"secret"
        with pytest.raises(ClientError):
            kms.sign(KeyId=data_key, Message=b"m", SigningAlgorithm="RSASSA_PKCS1_V1_5_SHA_256")
        for spec, algorithm in (
            ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
            ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ):
            key = kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
            signature = kms.sign(KeyId=key, Message=b"m", SigningAlgorithm=algorithm)["Signature"]
            assert kms.verify(KeyId=key, Message=b"m", Signature=signature, SigningAlgorithm=algorithm)[
                "SignatureValid"
            ]
            assert kms.get_public_key(KeyId=key)["PublicKey"]


def test_a_symmetric_keys_private_key_is_made_when_first_used() -> None:
    lighten_moto()
    key = models.generate_private_key("SYMMETRIC_DEFAULT")  # type: ignore[attr-defined]
    other = models.generate_private_key("SYMMETRIC_DEFAULT")  # type: ignore[attr-defined]
    assert key.public_key() == key.public_key()  # one key, made once
    assert key.public_key() != other.public_key()  # each its own, as moto's were
