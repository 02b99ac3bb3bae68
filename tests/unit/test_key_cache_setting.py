"""SETHUB_KEY_CACHE_SECONDS: how long a container remembers an API key lookup, so how long a
revoked key may keep working there. DESIGN.md: within a minute, so 1 to 60 seconds."""

from __future__ import annotations

import pytest

from sethub.api import key_checker
from sethub.clients import AwsClients
from sethub.credentials.checker import CACHE_SECONDS
from sethub.errors import ConfigurationError
from sethub.settings import Settings

TABLE = {"SETHUB_TABLE_NAME": "hub"}


def test_the_default_cache_keeps_a_revoked_key_working_under_a_minute():
    settings = Settings.from_env(TABLE)

    assert settings.key_cache_seconds == CACHE_SECONDS == 30
    assert key_checker(AwsClients(), settings).ttl == 30


@pytest.mark.parametrize("value", ["1", "60", " 5 "])
def test_a_cache_of_one_to_sixty_seconds_is_what_the_checker_uses(value):
    settings = Settings.from_env({**TABLE, "SETHUB_KEY_CACHE_SECONDS": value})

    assert key_checker(AwsClients(), settings).ttl == int(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("61", "at most 60"),
        ("3600", "at most 60"),
        ("0", "at least 1"),
        ("-5", "at least 1"),
        ("1.5", "whole number"),
        ("soon", "whole number"),
    ],
)
def test_a_cache_outside_one_to_sixty_seconds_is_refused_with_its_reason(value, reason):
    with pytest.raises(ConfigurationError, match=reason) as refused:
        Settings.from_env({**TABLE, "SETHUB_KEY_CACHE_SECONDS": value})

    assert "SETHUB_KEY_CACHE_SECONDS" in str(refused.value)


@pytest.mark.parametrize("seconds", [0, 61])
def test_settings_built_in_code_are_held_to_the_same_bounds(seconds):
    with pytest.raises(ConfigurationError, match="SETHUB_KEY_CACHE_SECONDS must be 1 to 60"):
        Settings(key_cache_seconds=seconds)
