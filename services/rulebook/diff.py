"""What changed between two knowledge versions, artifact by artifact, in words a committee reads."""

from __future__ import annotations

from services.plan_builder.knowledge import Knowledge
from services.plan_builder.types import JSON


def _codes(vs: JSON) -> set[str]:
    out = set()
    for inc in vs.get("compose", {}).get("include", []):
        out |= {f"{inc.get('system')}|{c.get('code')}" for c in inc.get("concept", [])}
        out |= {f"{inc.get('system')} filter {f.get('value')}" for f in inc.get("filter", [])}
        out |= {f"value set {v}" for v in inc.get("valueSet", [])}
    out |= {
        f"{e['url'].rsplit('/', 1)[-1]}: {e.get('valueString')}"
        for e in vs.get("extension", [])
        if "valueString" in e
    }
    return out


def artifact_diff(old: Knowledge, new: Knowledge) -> list[str]:
    out: list[str] = []
    for plan_url, plan in new.plans.items():
        before = old.plans.get(plan_url)
        if before is None:
            out.append(f"new PlanDefinition {plan.title} {plan.version}")
            continue
        if before.version != plan.version:
            out.append(f"{plan.title}: version {before.version} -> {plan.version}")
        was = {a.id: a for a in before.actions}
        now = {a.id: a for a in plan.actions}
        out += [f"{plan.title}: new rule {a.key} ({a.title})" for i, a in now.items() if i not in was]
        out += [f"{plan.title}: rule removed: {a.key} ({a.title})" for i, a in was.items() if i not in now]
        for i, a in now.items():
            b = was.get(i)
            if b is None:
                continue
            for what, x, y in (
                ("condition", b.expression, a.expression),
                ("title", b.title, a.title),
                ("recommendation text", b.description, a.description),
                ("citation", b.citation, a.citation),
                ("card indicator", b.indicator, a.indicator),
            ):
                if x != y:
                    out.append(f"{plan.title}: {a.key}: {what} changed: {x!r} -> {y!r}")
    old_vs = {vs["id"]: vs for vs in old.by_type("ValueSet")}
    for vs in new.by_type("ValueSet"):
        before_vs = old_vs.get(vs["id"])
        if before_vs is None:
            out.append(f"new ValueSet {vs['id']}")
            continue
        added, removed = _codes(vs) - _codes(before_vs), _codes(before_vs) - _codes(vs)
        if added:
            out.append(f"ValueSet {vs['id']}: added {', '.join(sorted(added))}")
        if removed:
            out.append(f"ValueSet {vs['id']}: removed {', '.join(sorted(removed))}")
    return out
