"""Patients streamed one resource per line (NDJSON), each patient's resources contiguous and
starting with its Patient, as an engine streaming per patient sends them. Only the current
patient is held, so memory stays bounded whatever the size of the stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

from services.plan_builder.batch import Outcome, orphan_outcome, plan_group
from services.plan_builder.bundle import PatientGroup, normalize_patient_ref
from services.plan_builder.errors import Msg, PlanInputError
from services.plan_builder.planner import Planner
from services.plan_builder.structural import READ_TYPES, validate_resource
from services.plan_builder.types import JSON


class PatientStream:
    def __init__(self, planner: Planner, at: date, strict: bool = False) -> None:
        self.planner = planner
        self.at = at
        self.strict = strict
        self.current: PatientGroup | None = None
        self.validate = validate_resource
        if strict:
            from services.plan_builder.strict import validate_strict

            self.validate = validate_strict

    def _flush(self) -> Iterator[Outcome]:
        if self.current is not None:
            group, self.current = self.current, None
            yield plan_group(group, self.planner, self.at, self.strict)

    def feed(self, line: bytes | str, number: int) -> Iterator[Outcome]:
        """One input line; yields the outcome of a patient once its last resource has passed."""
        where = f"line {number}"
        if not line.strip():
            return
        try:
            resource = json.loads(line)
        except RecursionError:
            # nested deeper than any FHIR resource: that line's error, the stream goes on
            yield from self._problem(
                PlanInputError(
                    f"{where} is nested too deeply", msg=Msg.NESTED_TOO_DEEPLY, path=where, code="structure"
                )
            )
            return
        except ValueError:
            yield from self._problem(
                PlanInputError(f"{where} is not JSON", msg=Msg.NOT_JSON, path=where, code="structure")
            )
            return
        if not isinstance(resource, dict):
            yield from self._problem(
                PlanInputError(
                    f"{where} is not a JSON object", msg=Msg.NOT_AN_OBJECT, path=where, code="structure"
                )
            )
            return
        if resource.get("resourceType") == "Patient":
            yield from self._flush()
            rid = resource.get("id") if isinstance(resource.get("id"), str) else None
            self.current = PatientGroup(number, resource, f"Patient/{rid}" if rid else f"{where} (Patient)")
            try:
                self.validate(resource, where)
            except PlanInputError as exc:
                self.current.problems.append(exc)
            if rid is None:
                self.current.problems.append(
                    PlanInputError(
                        "Patient has no id", msg=Msg.PATIENT_WITHOUT_ID, resource_type="Patient", path=where
                    )
                )
            return
        if resource.get("resourceType") not in READ_TYPES:
            return  # resource types the rules do not read are ignored
        subject = resource.get("subject") or resource.get("patient")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if (
            self.current is None
            or not isinstance(reference, str)
            or normalize_patient_ref(reference) != self.current.ref
        ):
            label = f"{resource.get('resourceType')} on {where}"
            yield orphan_outcome(
                PlanInputError(
                    f"{label} does not refer to the Patient it follows",
                    msg=Msg.NOT_THE_PATIENTS,
                    path=where,
                    code="not-found",
                )
            )
            return
        try:
            self.current.resources.append(self.validate(resource, where))
        except PlanInputError as exc:
            self.current.problems.append(exc)

    def _problem(self, problem: PlanInputError) -> Iterator[Outcome]:
        if self.current is not None:
            self.current.problems.append(problem)
        else:
            yield orphan_outcome(problem)

    def close(self) -> Iterator[Outcome]:
        yield from self._flush()


def ndjson_line(resource: JSON) -> bytes:
    return json.dumps(resource, separators=(",", ":")).encode() + b"\n"
