"""Explain mode: why each card did or did not fire, for integrators the operator trusts.

Asked with ``?explain=true`` or the header ``X-OI-CDS-Explain: true``; allowed in demo mode and,
with auth on, to the JWT issuers in OI_CDS_EXPLAIN_ISSUERS (anyone else gets 403, never a quiet
answer without it). The answer carries patient data (facts and the resources they came from), so
it goes to the caller in the response's ``extension`` and never to a log.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from services.cds_hooks.config import Settings
from services.cds_hooks.errors import Forbidden, Msg
from services.cds_hooks.models import HookRequest
from services.cds_hooks.prefetch import PrefetchKey
from services.cds_hooks.service import HookEnv, Trace
from services.plan_builder.explain import compact, explain_plan
from services.plan_builder.types import JSON

EXTENSION = "org.example.oi-cds.explain"
HEADER = "x-oi-cds-explain"
_YES = frozenset({"1", "true", "yes"})


def asked(request: Request) -> bool:
    # on every hook call: the query string is parsed only when there is one
    query = request.query_params.get("explain") if request.scope.get("query_string") else None
    value = query or request.headers.get(HEADER)
    return value is not None and value.strip().lower() in _YES


def allow(request: Request, settings: Settings) -> None:
    """Raises 403 unless the caller may see explanations."""
    if settings.demo:
        return
    claims: dict[str, Any] | None = getattr(request.state, "jwt", None)
    if settings.auth_required and claims and claims.get("iss") in settings.explain_issuers:
        return
    raise Forbidden(
        "explain mode is not allowed for this caller (demo mode, or a JWT issuer in OI_CDS_EXPLAIN_ISSUERS)",
        msg=Msg.EXPLAIN_NOT_ALLOWED,
    )


def sources(request: HookRequest, keys: tuple[PrefetchKey, ...], trace: Trace) -> list[JSON]:
    """Where each prefetch key's data came from: prefetch, the FHIR server, or nowhere (why)."""
    data = trace.data
    out: list[JSON] = []
    for spec in keys:
        reason = next(
            (u.split(": ", 1)[1] for u in (data.unchecked if data else ()) if u.startswith(spec.what + ":")),
            None,
        )
        if reason is not None:
            source, note = "unavailable", reason
        elif data is not None and spec.key in data.fetched:
            source, note = "fhirServer", spec.template
        elif spec.key in (request.prefetch or {}):
            source, note = "prefetch", "null: no data" if (request.prefetch or {})[spec.key] is None else ""
        else:
            source, note = "not read", ""
        out.append(compact({"key": spec.key, "source": source, "required": spec.required, "note": note}))
    return out


def explanation(request: HookRequest, env: HookEnv, trace: Trace, total_ms: float) -> JSON:
    body: JSON = {"data": sources(request, env.prefetch, trace)}
    if trace.data is not None and trace.data.without_oi:
        body["decided"] = "no OI Condition in the record: nothing else was read"
    if trace.result is not None:
        body |= explain_plan(env.planner.plan_definition, trace.result)
    if trace.orders:
        body["orders"] = trace.orders
    body["timings"] = {name: round(ms, 3) for name, ms in trace.timings.items()} | {
        "total": round(total_ms, 3)
    }
    return compact(body)
