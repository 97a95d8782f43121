"""Store keys made from text buttress does not choose (rate-limit keys, breaker names).

``digest_key`` is the one stand-in for text a store cannot hold as it is: ``~h:``
and a 128-bit BLAKE2b digest, alike for every component and every backend.
``hash_tag`` is Redis Cluster's rule for the part of a key that picks its slot.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["HASHED", "digest_key", "hash_tag"]

HASHED: Final = "~h:"
"""What every digested key starts with; text that starts so is digested itself,
so no text kept as it is can stand for another's digest."""


def digest_key(text: str) -> str:
    """``~h:`` and the 128-bit BLAKE2b digest (hex) of ``text``'s UTF-8 bytes."""
    # surrogatepass: a lone surrogate (valid in a str, not in UTF-8) still digests.
    data = text.encode("utf-8", "surrogatepass")
    return HASHED + hashlib.blake2b(data, digest_size=16).hexdigest()


def hash_tag(key: bytes) -> bytes | None:
    """The part of ``key`` whose CRC16 picks its Redis Cluster slot: the text inside
    its first ``{`` and the first ``}`` after it, when that is not empty; None when
    the whole key is hashed (no such braces, or an empty ``{}`` first)."""
    start = key.find(b"{")
    if start < 0:
        return None
    end = key.find(b"}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]
