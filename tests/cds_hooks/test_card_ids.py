"""Card uuids carry their recommendation key."""

from __future__ import annotations

import uuid

import pytest

from services.cds_hooks.card_ids import KeyDecoder, issue
from services.plan_builder import Knowledge


def test_round_trip_for_every_key(knowledge: Knowledge) -> None:
    decoder = KeyDecoder(knowledge.recommendation_codes)
    for key in knowledge.recommendation_codes:
        card = issue(key)
        parsed = uuid.UUID(card)
        assert parsed.version == 8
        assert parsed.variant == uuid.RFC_4122
        assert decoder.key_of(card) == key


def test_uuids_are_unguessable_and_distinct() -> None:
    cards = {issue("fracture-care") for _ in range(1000)}
    assert len(cards) == 1000


@pytest.mark.parametrize("other", [str(uuid.uuid4()), "not-a-uuid", "", str(uuid.UUID(int=0))])
def test_foreign_uuids_have_no_key(other: str, knowledge: Knowledge) -> None:
    assert KeyDecoder(knowledge.recommendation_codes).key_of(other) is None
