"""The one exception family of the plan builder (PlanError), mapped to responses by each face.

- PlanInputError: input that is not usable FHIR for planning (a 4xx, or a per-patient outcome);
- KnowledgeError: knowledge artifacts or a site directory the service must not start on.
"""

from services.plan_builder.types import JSON


class PlanError(Exception):
    """The root of every error the plan builder raises."""


class KnowledgeError(PlanError, RuntimeError):
    """The knowledge artifacts (or a site's maps) are inconsistent: the service must not start."""


class PlanInputError(PlanError, ValueError):
    """Input that is not usable FHIR for planning; says which resource and field."""

    def __init__(
        self,
        message: str,
        *,
        resource_type: str | None = None,
        resource_id: str | None = None,
        path: str | None = None,
        code: str = "invalid",
    ) -> None:
        self.message = message
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.path = path
        self.code = code
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.resource_type or "input"
        if self.resource_id:
            where += f"/{self.resource_id}"
        if self.path:
            where += f" {self.path}"
        return f"{where}: {self.message}"

    def to_issue(self) -> JSON:
        issue: JSON = {"severity": "error", "code": self.code, "diagnostics": self.describe()}
        if self.path:
            issue["expression"] = [self.path]
        return issue


def operation_outcome(issues: list[JSON]) -> JSON:
    return {"resourceType": "OperationOutcome", "issue": issues}
