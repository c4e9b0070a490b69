"""Card uuids that carry their recommendation key, so feedback can be read per key with no
lookup table: an RFC 9562 version-8 UUID whose first 4 bytes are a hash of the key and whose
other 90 free bits are random. Nothing is written when a card is issued, nothing is lost on a
crash, and every replica decodes every card."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable


def _tag(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()[:4]


def issue(key: str) -> str:
    raw = bytearray(_tag(key) + os.urandom(12))
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
    return str(uuid.UUID(bytes=bytes(raw)))


class KeyDecoder:
    def __init__(self, keys: Iterable[str]) -> None:
        self._by_tag = {_tag(k): k for k in keys}

    def key_of(self, card_uuid: str) -> str | None:
        """The key a card uuid of ours carries; None for any other string."""
        try:
            value = uuid.UUID(card_uuid)
        except ValueError:
            return None
        if value.version != 8:
            return None
        return self._by_tag.get(value.bytes[:4])
