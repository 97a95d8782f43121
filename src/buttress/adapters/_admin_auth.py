"""The admin endpoints' bearer token: refused unless set, compared in constant time.

The configured token is kept only as its SHA-256 digest. Each request's
credentials are hashed the same way and the two 32-byte digests compared with
``hmac.compare_digest``, so how long a request takes depends neither on how
many leading characters a guess got right nor on the guess's length. Every
request runs the comparison, with or without an ``Authorization`` header.
"""

from __future__ import annotations

import hashlib
import re
from hmac import compare_digest
from typing import Final

from buttress.errors import ValidationError
from buttress.log import register_secret

__all__ = ["MIN_TOKEN_LENGTH", "BearerToken", "Credentials"]

MIN_TOKEN_LENGTH: Final = 16
"""Shorter tokens are refused: an admin token is a generated secret, not a password."""

_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class Credentials:
    """What a request presented: whether it was a bearer token at all, and whether it matched."""

    __slots__ = ("matched", "presented")

    def __init__(self, presented: bool, matched: bool) -> None:
        self.presented = presented
        self.matched = matched


class BearerToken:
    """The secret every admin request must present as ``Authorization: Bearer <token>``."""

    __slots__ = ("_digest",)

    def __init__(self, token: object) -> None:
        if token is None or token == "":
            raise ValidationError(
                "token", "is required: the admin endpoints never serve without a bearer token"
            )
        if not isinstance(token, str):
            raise ValidationError("token", f"must be a string, not {type(token).__name__}")
        if len(token) < MIN_TOKEN_LENGTH or not _VISIBLE_ASCII.fullmatch(token):
            raise ValidationError(
                "token",
                f"must be at least {MIN_TOKEN_LENGTH} visible ASCII characters with no spaces "
                "(generate one, e.g. secrets.token_urlsafe(32))",
            )
        register_secret(token)
        self._digest = _digest(token.encode("ascii"))

    def __repr__(self) -> str:
        return "BearerToken(***)"

    def check(self, authorization: bytes | None) -> Credentials:
        """Judge an ``Authorization`` header's raw bytes (None when absent)."""
        scheme, _, rest = (authorization or b"").strip().partition(b" ")
        given = rest.strip() if scheme.lower() == b"bearer" else b""
        # Hashed and compared whatever was sent, so a missing or malformed
        # header takes the same path as a wrong token.
        matched = compare_digest(_digest(given), self._digest)
        return Credentials(presented=bool(given), matched=matched and bool(given))
