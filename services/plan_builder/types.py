"""Shared type aliases."""

from typing import Any

# A FHIR resource (or any JSON object) as parsed from JSON: plain data on the hot path.
JSON = dict[str, Any]

# Three-valued logic, as FHIRPath has it: None means "cannot be decided from the record".
Tri = bool | None
