"""TokenVerifier remembers verified tokens, never failures, and never past their expiry."""

from __future__ import annotations

import time

import jwt
import pytest

from services.platform.errors import Unauthenticated
from services.platform.identity import Caller, StaticKeySource, TokenVerifier, VerifiedTokens
from tests.platform.servicer_fixture import AUDIENCE, ISSUER, SigningKey


class CountingKeys(StaticKeySource):
    def __init__(self, key: SigningKey) -> None:
        super().__init__({key.kid: key.public_jwk()})
        self.lookups = 0

    async def get_key(self, kid: str) -> jwt.PyJWK:
        self.lookups += 1
        return await super().get_key(kid)


def verifier(keys: CountingKeys) -> TokenVerifier:
    return TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE)


async def test_a_token_is_verified_once_then_remembered() -> None:
    key = SigningKey()
    keys = CountingKeys(key)
    tokens = verifier(keys)
    token = key.token("u-1", roles=("user",))
    first = await tokens.verify(token)
    again = await tokens.verify(token)
    assert first == again == Caller(user_id="u-1", roles=frozenset({"user"}))
    assert keys.lookups == 1


async def test_failures_are_never_remembered() -> None:
    key, stranger = SigningKey(), SigningKey()
    keys = CountingKeys(key)
    tokens = verifier(keys)
    forged = stranger.token("u-1", kid=key.kid)  # a known kid, signed by another key
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await tokens.verify(forged)
    assert keys.lookups == 2


def test_entries_end_at_the_token_expiry_or_max_age() -> None:
    now = [1000.0]
    cache = VerifiedTokens(size=8, max_age=60, clock=lambda: now[0])
    caller = Caller(user_id="u-1", roles=frozenset())
    cache.put("short", caller, expires_at=1010)
    cache.put("long", caller, expires_at=5000)
    now[0] = 1009.9
    assert cache.get("short") == caller
    now[0] = 1010
    assert cache.get("short") is None
    now[0] = 1059.9
    assert cache.get("long") == caller
    now[0] = 1060
    assert cache.get("long") is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = VerifiedTokens(size=2, max_age=60)
    caller = Caller(user_id="u-1", roles=frozenset())
    expiry = time.time() + 600
    cache.put("a", caller, expiry)
    cache.put("b", caller, expiry)
    assert cache.get("a") == caller  # "b" is now the least recently used
    cache.put("c", caller, expiry)
    assert cache.get("b") is None
    assert cache.get("a") == caller
    assert cache.get("c") == caller
