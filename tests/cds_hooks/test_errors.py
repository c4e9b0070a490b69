"""Every error of the HTTP face carries a stable message code (OperationOutcome.issue.details
and the request log line): integrations and these tests match on the code, not the wording."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cds_hooks.errors import Msg
from services.plan_builder.canonical import MESSAGE_SYSTEM
from services.plan_builder.errors import Msg as PlanMsg
from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of
from tests.servers import demo_service

PID = "oi-type-iii-child"
HOOK = "/cds-services/oi-management"
JSON_TYPE = {"Content-Type": "application/json"}
FHIR_TYPE = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("errors")
    with demo_service(folder) as base:
        yield base, folder / "log.txt"


def _prefetch(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    prefetch = prefetch_of(example_bundle(), PID)
    change(prefetch)
    return hook_request("patient-view", PID, prefetch)


def _bad_condition(prefetch: dict[str, Any]) -> None:
    condition = prefetch["conditions"]["entry"][0]["resource"]
    condition["code"] = {"coding": "not an array"}


def _other_patient(prefetch: dict[str, Any]) -> None:
    prefetch["patient"]["id"] = "someone-else"


def _no_hook_instance() -> dict[str, Any]:
    body = hook_request("patient-view", PID)
    del body["hookInstance"]
    return body


# (what, method, path, body (JSON, or bytes as sent), headers, status, message code)
CASES: list[tuple[str, str, str, Any, dict[str, str], int, StrEnum]] = [
    ("not JSON", "POST", HOOK, b"{not json", JSON_TYPE, 400, Msg.INVALID_JSON),
    ("not an object", "POST", HOOK, [], JSON_TYPE, 400, Msg.NOT_AN_OBJECT),
    ("no hookInstance", "POST", HOOK, _no_hook_instance(), JSON_TYPE, 400, Msg.INVALID_HOOK_REQUEST),
    (
        "wrong hook",
        "POST",
        HOOK,
        hook_request("order-select", PID, drafts=[]),
        JSON_TYPE,
        400,
        Msg.WRONG_HOOK,
    ),
    (
        "no patientId",
        "POST",
        HOOK,
        {**hook_request("patient-view", PID), "context": {"userId": "Practitioner/x"}},
        JSON_TYPE,
        400,
        Msg.INVALID_CONTEXT,
    ),
    (
        "prefetch not a resource",
        "POST",
        HOOK,
        _prefetch(lambda p: p.update(patient="x")),
        JSON_TYPE,
        400,
        Msg.INVALID_PREFETCH,
    ),
    ("another patient", "POST", HOOK, _prefetch(_other_patient), JSON_TYPE, 400, Msg.OTHER_PATIENT),
    (
        "draftOrders not a Bundle",
        "POST",
        "/cds-services/oi-order-sign",
        {**hook_request("order-sign", PID), "context": {"userId": "u", "patientId": PID, "draftOrders": {}}},
        JSON_TYPE,
        400,
        Msg.INVALID_DRAFT_ORDERS,
    ),
    (
        "patient data not usable FHIR",
        "POST",
        HOOK,
        _prefetch(_bad_condition),
        JSON_TYPE,
        400,
        PlanMsg.INVALID_FIELD,
    ),
    (
        "unknown service",
        "POST",
        "/cds-services/nope",
        hook_request("patient-view", PID),
        JSON_TYPE,
        404,
        Msg.UNKNOWN_SERVICE,
    ),
    ("not JSON content", "POST", HOOK, b"x", {"Content-Type": "text/plain"}, 415, Msg.MEDIA_TYPE),
    ("no such endpoint", "GET", "/nowhere", None, {}, 404, Msg.NOT_FOUND),
    ("method", "DELETE", "/cds-services", None, {}, 405, Msg.METHOD_NOT_ALLOWED),
    (
        "evaluationDate",
        "POST",
        "/fhir/PlanDefinition/oi-management/$apply?evaluationDate=soon",
        {"resourceType": "Bundle", "type": "collection", "entry": []},
        FHIR_TYPE,
        400,
        Msg.INVALID_EVALUATION_DATE,
    ),
    (
        "Bundle.type",
        "POST",
        "/fhir/PlanDefinition/oi-management/$apply",
        {"resourceType": "Bundle", "type": "document-ish", "entry": []},
        FHIR_TYPE,
        400,
        PlanMsg.BUNDLE_TYPE,
    ),
    ("feedback", "POST", HOOK + "/feedback", {"feedback": 1}, JSON_TYPE, 400, Msg.INVALID_FEEDBACK),
    ("admin since", "GET", "/admin/feedback?since=yesterday", None, {}, 400, Msg.INVALID_QUERY),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "msg"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_error_says_its_message_code_in_the_body_and_the_log(
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    msg: StrEnum,
    served: tuple[str, Path],
) -> None:
    base, log = served
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = httpx.request(method, base + path, content=content, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    (issue,) = response.json()["issue"]
    assert issue["details"]["coding"] == [
        {"system": MESSAGE_SYSTEM, "code": msg.value, "display": msg.name.lower()}
    ]
    assert [line.get("msg") for line in _request_lines(log, response.headers["x-request-id"])] == [msg.value]


def _request_lines(log: Path, request_id: str) -> list[dict[str, Any]]:
    """The request's log line, written once the answer has gone (so, waited for)."""
    for _ in range(100):
        lines = [json.loads(line) for line in log.read_text().splitlines() if request_id in line]
        found = [line for line in lines if line.get("message") == "request"]
        if found:
            return found
        time.sleep(0.05)
    return []


def test_a_plan_input_error_says_where_it_was_found(served: tuple[str, Path]) -> None:
    base, _ = served
    response = httpx.post(base + HOOK, json=_prefetch(_bad_condition), timeout=10)
    (issue,) = response.json()["issue"]
    assert issue["diagnostics"].startswith("patient data is not usable FHIR: Condition")


def test_message_codes_are_unique_and_never_shared_between_the_layers() -> None:
    codes = [m.value for m in Msg] + [m.value for m in PlanMsg]
    assert len(codes) == len(set(codes))
    assert all(m.value.startswith("OICDS-H") for m in Msg)
    assert all(m.value.startswith("OICDS-P") for m in PlanMsg)


def test_docs_list_every_message_code() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()
    rows = dict(re.findall(r"^\| `(OICDS-\w+)` \| `(\w+)` \|", page, re.M))
    assert rows == {m.value: m.name.lower() for m in [*Msg, *PlanMsg]}
