"""SMART scopes read as the fallback reads them: v1 and v2 grammars, wildcards, other scopes."""

from __future__ import annotations

import pytest

from services.cds_hooks.scopes import allows, granted


@pytest.mark.parametrize(
    ("scope", "resource_type", "search", "allowed"),
    [
        (None, "Observation", True, True),  # no scope stated: nothing to check against
        ("patient/Observation.read", "Observation", True, True),
        ("patient/Observation.read", "Condition", True, False),
        ("user/*.read", "Condition", True, True),
        ("system/*.*", "Medication", False, True),
        ("patient/Observation.rs", "Observation", True, True),
        ("patient/Observation.r", "Observation", True, False),
        ("patient/Observation.r", "Observation", False, True),
        ("patient/Observation.s", "Observation", False, False),
        ("patient/Observation.rs?category=laboratory", "Observation", True, True),
        ("patient/Observation.write", "Observation", False, False),
        ("patient/Observation.cud", "Observation", False, False),
        ("openid fhirUser launch/patient offline_access", "Patient", False, False),
        ("", "Patient", False, False),
        ("patient/observation.read", "Observation", False, False),  # types are case-sensitive
    ],
)
def test_scope_allows(scope: str | None, resource_type: str, search: bool, allowed: bool) -> None:
    assert allows(granted(scope), resource_type, search) is allowed
