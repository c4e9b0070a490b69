"""CDS Hooks 2.0 wire models, named as in the specification. No logic here."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class _Wire(BaseModel):
    # Requests may carry members we do not know (extension, 3.0 fields): tolerate them.
    model_config = ConfigDict(extra="allow")

    def wire(self) -> dict[str, Any]:
        """JSON-ready dict without None: CDS Hooks forbids nulls for absent optional members."""
        return self.model_dump(mode="json", exclude_none=True)


class Coding(_Wire):
    system: str
    code: str
    display: str | None = None


class FhirAuthorization(_Wire):
    access_token: str = Field(repr=False)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


class HookRequest(_Wire):
    hook: str = Field(min_length=1)
    hookInstance: str = Field(min_length=1)
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None  # CDS Hooks' extension object (QUIET_EXTENSION)

    @model_validator(mode="after")
    def _server_with_token(self) -> HookRequest:
        if self.fhirAuthorization is not None and not self.fhirServer:
            raise ValueError("fhirAuthorization requires fhirServer")
        return self


class PatientViewContext(_Wire):
    userId: str | None = None
    patientId: str = Field(min_length=1)
    encounterId: str | None = None

    @field_validator("patientId")
    @classmethod
    def _fhir_id(cls, value: str) -> str:
        # the FHIR Patient.id: 1-64 of [A-Za-z0-9-.], nothing else (no newline, no 70,000
        # characters, nothing a URL would need to escape)
        if not FHIR_ID.fullmatch(value):
            raise ValueError("patientId must be a FHIR id (1-64 letters, digits, '-' or '.')")
        return value


class OrderSignContext(PatientViewContext):
    draftOrders: dict[str, Any]


class OrderSelectContext(OrderSignContext):
    selections: list[str]


class Source(_Wire):
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(_Wire):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(_Wire):
    label: str
    uuid: str | None = None
    isRecommended: bool | None = None
    actions: list[Action] | None = None


class Link(_Wire):
    label: str
    url: str
    type: Literal["absolute", "smart"]
    appContext: str | None = None


class Card(_Wire):
    uuid: str | None = None
    summary: str = Field(max_length=139)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[Coding] | None = None
    links: list[Link] | None = None


class CdsResponse(_Wire):
    cards: list[Card]


class CdsService(_Wire):
    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class Discovery(_Wire):
    services: list[CdsService]


class ReasonCoding(_Wire):
    """An override reason as feedback sends it (the CDS Hooks Sandbox sends a code alone):
    strings bounded to what the database keeps, the same on every backend."""

    system: str | None = Field(None, max_length=255)
    code: str | None = Field(None, max_length=64)
    display: str | None = None


class OverrideReason(_Wire):
    reason: ReasonCoding | None = None
    userComment: str | None = None


class AcceptedSuggestion(_Wire):
    id: str = Field(min_length=1, max_length=128)


class Feedback(_Wire):
    card: str = Field(min_length=1, max_length=64)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str

    @model_validator(mode="after")
    def _accepted_needs_suggestions(self) -> Feedback:
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("an accepted outcome needs acceptedSuggestions")
        return self


class FeedbackRequest(_Wire):
    feedback: list[Feedback]
