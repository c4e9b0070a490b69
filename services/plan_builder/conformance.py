"""Check a resource against one of our profiles' differential (cardinality, fixed values,
required bindings, reference targets). Enough for the hand-written profiles in
fhir_profiles/; not a general FHIR profile validator.
"""

from __future__ import annotations

from typing import Any

from services.plan_builder.terminology import Terminology, vs_id
from services.plan_builder.types import JSON


def _children(nodes: list[Any], name: str) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        if isinstance(node, dict) and name in node:
            value = node[name]
            out.extend(value if isinstance(value, list) else [value])
    return out


def _nodes(resource: JSON, segments: list[str]) -> list[Any]:
    nodes: list[Any] = [resource]
    for name in segments:
        nodes = _children(nodes, name)
    return nodes


def check_profile(resource: JSON, profile: JSON, terminology: Terminology) -> list[str]:
    """Problems found; an empty list means the resource conforms to the differential."""
    problems: list[str] = []
    if resource.get("resourceType") != profile.get("type"):
        return [f"resourceType {resource.get('resourceType')!r} is not {profile.get('type')!r}"]
    for element in profile.get("differential", {}).get("element", []):
        path = element["path"]
        segments = path.split(".")[1:]
        if not segments:
            continue
        parents = _nodes(resource, segments[:-1])
        values: list[Any] = []
        for parent in parents:
            found = _children([parent], segments[-1])
            values.extend(found)
            minimum, maximum = element.get("min"), element.get("max")
            if minimum is not None and len(found) < minimum:
                problems.append(f"{path}: at least {minimum} required, found {len(found)}")
            if maximum not in (None, "*") and len(found) > int(maximum):
                problems.append(f"{path}: at most {maximum} allowed, found {len(found)}")
        for key, expected in element.items():
            if key.startswith(("fixed", "pattern")):
                problems.extend(
                    f"{path}: {v!r} is not the fixed value {expected!r}" for v in values if v != expected
                )
        binding = element.get("binding", {})
        if binding.get("strength") == "required":
            allowed = vs_id(binding["valueSet"])
            for value in values:
                codings = value.get("coding", []) if isinstance(value, dict) else []
                if not any(
                    allowed in terminology.lookup(c.get("system", ""), c.get("code", "")) for c in codings
                ):
                    problems.append(f"{path}: no coding from the required value set {allowed}")
        for type_ in element.get("type", []):
            targets = [t.rsplit("/", 1)[-1] for t in type_.get("targetProfile", [])]
            for value in values:
                ref = value.get("reference", "") if isinstance(value, dict) else ""
                if targets and not (
                    ref.startswith("urn:") or ref.split("/")[-2:-1] in [[t] for t in targets]
                ):
                    problems.append(f"{path}: reference {ref!r} does not point to {', '.join(targets)}")
    return problems
