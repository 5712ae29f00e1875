"""Bearer tokens: names, constant-time comparison of every token, off when none configured."""

from __future__ import annotations

import hmac

import pytest
from pydantic import SecretStr

from scaleforge.errors import InvalidParameterError
from scaleforge.serve.auth import AuthenticationError, TokenAuth


def test_disabled_without_tokens() -> None:
    auth = TokenAuth({})
    assert not auth.enabled
    assert auth.authenticate(None) == "anonymous"


def test_names_the_matching_token_and_accepts_secretstr() -> None:
    auth = TokenAuth({"alice": "token-aaaa", "bob": SecretStr("token-bbbb")})
    assert auth.authenticate("Bearer token-bbbb") == "bob"
    assert auth.authenticate("bearer token-aaaa") == "alice"
    assert auth.names == ["alice", "bob"]


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Basic token-aaaa", "Bearer wrong-token", "Bearer token-aaa"]
)
def test_missing_or_wrong_token_is_rejected(header: str | None) -> None:
    with pytest.raises(AuthenticationError):
        TokenAuth({"alice": "token-aaaa"}).authenticate(header)


def test_every_token_is_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = TokenAuth({"a": "token-1111", "b": "token-2222", "c": "token-3333"})
    assert auth.authenticate("Bearer token-1111") == "a"
    assert calls == [b"token-1111", b"token-2222", b"token-3333"]  # no early exit on the first match


def test_short_tokens_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="8 characters"):
        TokenAuth({"x": "short"})
