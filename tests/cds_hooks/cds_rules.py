"""The conformance checklist's response rows (R1-R20, D3-D10) as reusable assertions."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from services.cds_hooks.models import CdsResponse

RESOURCE_ID = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
TOKEN = re.compile(r"\{\{([^}]*)\}\}")
HTML_TAG = re.compile(r"<[a-zA-Z/!]")


def assert_no_empty(node: Any, path: str = "$", allow_empty: tuple[str, ...] = ()) -> None:
    """R20 / D8: no null, "", [] or {} anywhere (except the allowed paths)."""
    if node is None or node == "" or (isinstance(node, list | dict) and not node and path not in allow_empty):
        raise AssertionError(f"empty or null value at {path}")
    if isinstance(node, dict):
        for key, value in node.items():
            assert_no_empty(value, f"{path}.{key}", allow_empty)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            assert_no_empty(value, f"{path}[{i}]", allow_empty)


def assert_conformant_response(body: dict[str, Any]) -> None:
    CdsResponse.model_validate(body)  # R1, R3-R5, R10, R13, R16, R17 shapes
    assert isinstance(body["cards"], list)
    assert "systemActions" not in body or body["systemActions"]  # R2
    assert_no_empty(body, allow_empty=("$.cards",))  # R20
    uuids = [c["uuid"] for c in body["cards"]]
    assert len(set(uuids)) == len(uuids)  # R9
    for card in body["cards"]:
        uuid.UUID(card["uuid"])
        assert len(card["summary"]) < 140  # R3
        assert card["indicator"] in {"info", "warning", "critical"}  # R4
        assert card["source"]["label"]  # R5
        topic = card["source"].get("topic")
        assert topic is None or (topic["system"] and topic["code"])  # R7
        if "detail" in card:
            assert not HTML_TAG.search(card["detail"]), card["detail"]  # R8
        suggestions = card.get("suggestions")
        if suggestions:
            assert card["selectionBehavior"] in {"at-most-one", "any"}  # R10
            if card["selectionBehavior"] == "at-most-one":
                assert sum(bool(s.get("isRecommended")) for s in suggestions) <= 1  # R12
            for suggestion in suggestions:
                assert suggestion["label"]
                uuid.UUID(suggestion["uuid"])  # R11
                for action in suggestion.get("actions", []):
                    assert action["type"] in {"create", "update", "delete"}
                    assert action["description"]  # R13
                    if action["type"] in ("create", "update"):
                        resource = action["resource"]
                        get_fhir_model_class(resource["resourceType"]).model_validate(resource)  # R14
                        if action["type"] == "update":
                            assert resource["id"]
                    else:
                        assert RESOURCE_ID.match(action["resourceId"])  # R15
                        assert "resource" not in action
        else:
            assert "selectionBehavior" not in card
        for reason in card.get("overrideReasons", []):
            assert reason["code"]
            assert reason["system"]
            assert reason["display"]  # R16
        for link in card.get("links", []):
            assert link["type"] in {"absolute", "smart"}  # R17
            assert "appContext" not in link or link["type"] == "smart"  # R18


def keys_of(body: dict[str, Any]) -> set[str]:
    return {c["source"]["topic"]["code"] for c in body["cards"] if "topic" in c["source"]}


def careplan_keys(body: dict[str, Any]) -> set[str]:
    """Keys of the CarePlan that the summary card's suggestion creates or updates."""
    for card in body["cards"]:
        for suggestion in card.get("suggestions", []):
            for action in suggestion.get("actions", []):
                resource = action.get("resource", {})
                if resource.get("resourceType") == "CarePlan":
                    return {c["code"] for a in resource["activity"] for c in a["detail"]["code"]["coding"]}
    return set()
