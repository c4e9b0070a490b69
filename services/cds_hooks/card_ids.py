"""Card uuids that carry their recommendation key, signed, so feedback can be read per key with
no lookup table and cannot be forged: an RFC 9562 version-8 UUID whose first 4 bytes are a hash
of the key, the next 6 random, and the last 6 an HMAC of the first 10 with the installation's
secret. Nothing is written when a card is issued, nothing is lost on a crash, and every replica
(sharing the secret through the database, or OI_CDS_CARD_SECRET) verifies every card; a uuid
minted by anyone else decodes to no key, so it cannot move a rule's statistics."""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import uuid
from collections.abc import Iterable

# keyed once, copied per card (a copy skips hashing the key's pads again); replaced at
# start-up by the installation's secret (configure)
_keyed = hmac.new(os.urandom(32), digestmod=hashlib.sha256)


def configure(secret: bytes) -> None:
    global _keyed
    _keyed = hmac.new(secret, digestmod=hashlib.sha256)


@functools.lru_cache(maxsize=1024)
def _tag(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()[:4]


def _mac(first: bytes) -> bytes:
    mac = _keyed.copy()
    mac.update(first)
    return mac.digest()[:6]


def issue(key: str) -> str:
    raw = bytearray(_tag(key) + os.urandom(6))
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
    return str(uuid.UUID(bytes=bytes(raw) + _mac(bytes(raw))))


class KeyDecoder:
    def __init__(self, keys: Iterable[str]) -> None:
        self._by_tag = {_tag(k): k for k in keys}

    def key_of(self, card_uuid: str) -> str | None:
        """The key a card uuid of ours carries; None for any other string, or a forged one."""
        try:
            value = uuid.UUID(card_uuid)
        except ValueError:
            return None
        if value.version != 8 or not hmac.compare_digest(_mac(value.bytes[:10]), value.bytes[10:]):
            return None
        return self._by_tag.get(value.bytes[:4])
