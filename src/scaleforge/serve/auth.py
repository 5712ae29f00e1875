"""Bearer-token authentication for the model server.

Tokens come from settings (``serve.tokens``: a mapping *name -> token*, e.g.
``SCALEFORGE_SERVE__TOKENS='{"team-a": "s3cret"}'``); the name labels the
caller in metrics, never the token. Every configured token is compared with
:func:`hmac.compare_digest`, all of them on every request, so the time taken
does not reveal which token, or how much of one, matched. With no tokens
configured, authentication is off. ``/health`` is always open.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from scaleforge.errors import (
    AuthenticationError,
    InvalidParameterError,
)

__all__ = ["AuthenticationError", "TokenAuth"]


class TokenAuth:
    """Check ``Authorization: Bearer <token>`` headers against named tokens.

    Parameters
    ----------
    tokens : mapping of str to str or SecretStr, optional
        Name -> token. Empty or ``None`` disables authentication.

    Examples
    --------
    >>> auth = TokenAuth({"alice": "t0ken-alice"})
    >>> auth.authenticate("Bearer t0ken-alice")
    'alice'
    """

    def __init__(self, tokens: Mapping[str, object] | None = None) -> None:
        entries: list[tuple[str, bytes]] = []
        for name, token in (tokens or {}).items():
            secret = token.get_secret_value() if hasattr(token, "get_secret_value") else token
            if not isinstance(name, str) or not name or not isinstance(secret, str) or len(secret) < 8:
                raise InvalidParameterError(
                    f"serve.tokens must map non-empty names to tokens of at least 8 characters. "
                    f"Token {name!r} is invalid; generate one with `python -c 'import secrets; print(secrets.token_urlsafe())'`."
                )
            entries.append((name, secret.encode()))
        self._entries = entries

    @property
    def enabled(self) -> bool:
        """Whether any token is configured."""
        return bool(self._entries)

    @property
    def names(self) -> list[str]:
        """The configured token names."""
        return [name for name, _ in self._entries]

    def authenticate(self, header: str | None) -> str:
        """Return the name of the token in ``header``.

        Parameters
        ----------
        header : str or None
            The ``Authorization`` header value.

        Returns
        -------
        str
            The token's name, or ``"anonymous"`` when authentication is off.

        Raises
        ------
        AuthenticationError
            When the header is missing, malformed or holds an unknown token.
        """
        if not self._entries:
            return "anonymous"
        if not header:
            raise AuthenticationError("Missing bearer token: send 'Authorization: Bearer <token>'.")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthenticationError("Malformed Authorization header: use 'Authorization: Bearer <token>'.")
        given = value.strip().encode()
        found: str | None = None
        for name, secret in self._entries:  # no early exit: constant work per request
            if hmac.compare_digest(given, secret) and found is None:
                found = name
        if found is None:
            raise AuthenticationError("Invalid bearer token. Check the token configured in serve.tokens.")
        return found
