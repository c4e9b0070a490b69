"""Plan results and order findings -> CDS Hooks cards (wire models). No clinical rule here."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Sequence
from typing import Any

from services.cds_hooks import card_ids
from services.plan_builder.canonical import RECOMMENDATION_SYSTEM
from services.plan_builder.careplan import plan_on_file
from services.plan_builder.engine import REMOVE_DRAFT, CardOffers
from services.plan_builder.orders import OrderFinding
from services.plan_builder.proposals import proposal, proposed_text
from services.plan_builder.results import PlanResult, Recommendation
from services.plan_builder.types import JSON

SOURCE_LABEL = "OI management summary (project source text)"


def _wire(**fields: Any) -> JSON:
    """A CDS Hooks object as plain JSON: absent members omitted (the spec forbids nulls).

    The wire models in models.py describe the same shapes; tests validate every response
    against them. Building plain dicts keeps pydantic off the hot path.
    """
    return {k: v for k, v in fields.items() if v is not None}


_card = _coding = _suggestion = _action = _wire


def new_uuid() -> str:
    return str(uuid.uuid4())


def topic(key: str, display: str | None = None) -> JSON:
    return _coding(system=RECOMMENDATION_SYSTEM, code=key, display=display)


def card_source(rec: Recommendation | None = None) -> JSON:
    """The summary card cites the whole summary; a key's card names its section."""
    if rec is not None:
        return _wire(
            label=f"{SOURCE_LABEL}: {rec.citation.removeprefix(SOURCE_LABEL + ', ')}"[:200],
            topic=topic(rec.key, rec.title),
        )
    return _wire(label=SOURCE_LABEL, topic=topic("careplan-summary", "OI care plan summary"))


# Backslash escapes for Markdown; entities for < and > so no raw tag survives even where a
# client renders HTML inside Markdown (the CDS Hooks Sandbox does).
_MD_ESCAPES = str.maketrans({**{ch: "\\" + ch for ch in "\\`*_{}[]#|&!"}, "<": "&lt;", ">": "&gt;"})


# GitHub-flavoured Markdown (CDS Hooks' detail) turns bare URLs, www. names and e-mail addresses
# into live links, and ~~ into strike-through: a trusted card must not carry a link from the record.
_AUTOLINK = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*):(?=//)|(\bwww)\.|(@)|(~)")


def _unlink(match: re.Match[str]) -> str:
    if match.group(1):
        return match.group(1) + "\\:"
    if match.group(2):
        return match.group(2) + "\\."
    return "\\" + match.group(0)


@functools.lru_cache(maxsize=16_384)
def _md(text: str) -> str:
    """Escape what Markdown or HTML would interpret in text that came from a record.

    Memoized: the same descriptions, citations and reasons come back on almost every call."""
    escaped = text.translate(_MD_ESCAPES)
    if ":" in escaped or "www" in escaped.lower() or "@" in escaped or "~" in escaped:
        return _AUTOLINK.sub(_unlink, escaped)
    return escaped


def _recommendation_lines(recs: Sequence[Recommendation]) -> list[str]:
    return [_recommendation_line(r.title, r.key, r.description, r.reasons, r.citation) for r in recs]


@functools.lru_cache(maxsize=16_384)
def _recommendation_line(
    title: str, key: str, description: str, reasons: tuple[str, ...], citation: str
) -> str:
    # depends only on what it renders: memoized (bounded), most calls repeat a few plans
    return (
        f"- **{_md(title)}** ({key}): {_md(description)}  \n"
        f"  _Why:_ {_md('; '.join(reasons))}.  \n  _Source:_ {_md(citation)}."
    )


def could_not_run_card(why: str) -> JSON:
    """Required data could not be had: one warning card instead of a 412 (OI_CDS_ON_MISSING_DATA=card)."""
    return _card(
        uuid=card_ids.issue("checks-not-run"),
        summary="OI checks could not run: required patient data was unavailable",
        detail="The osteogenesis imperfecta checks did not run, so no OI advice is shown. "
        + f"{_md(why)}.\n\nThis is not an all-clear: check again when the data is available.",
        indicator="warning",
        source=_wire(label=SOURCE_LABEL, topic=topic("checks-not-run", "OI checks could not run")),
    )


def patient_view_cards(
    result: PlanResult, care_plans: Sequence[JSON], unchecked: Sequence[str], plan_version: str
) -> list[JSON]:
    if result.careplan is None:
        return []
    recs = result.recommendations
    careplan = result.careplan
    on_file = plan_on_file(result, care_plans, plan_version)
    detail = [
        "Recommendations for this patient with osteogenesis imperfecta:",
        "",
        *_recommendation_lines(recs),
    ]
    if result.notes:
        detail += ["", "**Notes**", "", *[f"- {_md(n)}" for n in result.notes]]
    if unchecked:
        detail += ["", "**Could not be checked**", "", *[f"- {_md(u)}" for u in unchecked]]
    count = f"{len(recs)} recommendation{'s' if len(recs) != 1 else ''}"
    suggestions = None
    if on_file.current:
        summary = f"OI care plan on file is current ({count})"
    else:
        if on_file.resource is not None:
            summary = f"OI care plan on file is out of date: {count} now apply"
            action = _action(
                type="update",
                description="Update the OI care plan on file",
                resource={**careplan, "id": on_file.resource.get("id", careplan["id"])},
            )
            label = "Update the OI care plan (draft)"
        else:
            summary = f"OI management: {count}; a draft care plan is ready"
            action = _action(
                type="create", description="Create a draft OI care plan (CarePlan)", resource=careplan
            )
            label = "Create the OI care plan (draft)"
        suggestions = [_suggestion(label=label, uuid=new_uuid(), isRecommended=True, actions=[action])]
    cards = [
        _card(
            uuid=card_ids.issue("careplan-summary"),
            summary=summary,
            detail="\n".join(detail),
            indicator="info",
            source=card_source(),
            suggestions=suggestions,
            selectionBehavior="at-most-one" if suggestions else None,
        )
    ]
    for rec in recs:
        if rec.indicator is None:
            continue
        own = [
            f"{_md(rec.description)}",
            "",
            f"_Why:_ {_md('; '.join(rec.reasons))}.",
            "",
            f"_Source:_ {_md(rec.citation)}.",
        ]
        if rec.key == "missing-facts" and result.notes:
            own += ["", *[f"- {_md(n)}" for n in result.notes if n.startswith("Missing")]]
        cards.append(
            _card(
                uuid=card_ids.issue(rec.key),
                summary=f"OI: {rec.title}"[:139],
                detail="\n".join(own),
                indicator=rec.indicator,
                source=card_source(rec),
            )
        )
    return cards


def _alternative_suggestions(
    offers: CardOffers, keys: frozenset[str], order: JSON, patient_ref: str
) -> list[JSON]:
    out = []
    order_ref = _order_ref(order)
    for alt in offers.alternatives:
        if alt.when_recommended is not None and alt.when_recommended not in keys:
            continue
        actions = [
            _action(
                type="create",
                description=f"Draft a {proposed_text(alt)} order (no dose)"
                if alt.definition["kind"] == "MedicationRequest"
                else f"Draft: {proposed_text(alt)}",
                resource=proposal(alt, patient_ref, order),
            )
        ]
        if alt.replaces_order and order_ref:
            actions.insert(0, _remove(order_ref))
        out.append(
            _suggestion(
                label=alt.definition["title"],
                uuid=new_uuid(),
                isRecommended=offers.recommended(alt.definition["id"]),
                actions=actions,
            )
        )
    return out


def _remove(order_ref: str) -> JSON:
    return _action(type="delete", description=f"Remove the draft {order_ref}", resourceId=order_ref)


def _order_ref(order: JSON) -> str | None:
    return f"{order['resourceType']}/{order['id']}" if order.get("id") else None


def override_reasons(code_system: JSON) -> list[JSON]:
    """A CodeSystem of override reasons as the Codings CDS Hooks cards carry."""
    return [
        _coding(system=code_system["url"], code=c["code"], display=c["display"])
        for c in code_system["concept"]
    ]


def order_cards(findings: Sequence[OrderFinding], plan_keys: Sequence[str], patient_ref: str) -> list[JSON]:
    """One card per finding; what it offers is data on the order-check action (CardOffers)."""
    keys = frozenset(plan_keys)
    cards = []
    for finding in findings:
        offers = finding.action.offers
        order_ref = _order_ref(finding.order)
        suggestions: list[JSON] = []
        if offers.offers_removal and order_ref:
            suggestions.append(
                _suggestion(
                    label="Remove this draft order",
                    uuid=new_uuid(),
                    isRecommended=offers.recommended(REMOVE_DRAFT),
                    actions=[_remove(order_ref)],
                )
            )
        suggestions.extend(_alternative_suggestions(offers, keys, finding.order, patient_ref))
        cards.append(_order_card(finding, f"OI: {finding.recommendation.title}", [], suggestions))
    return cards


def active_order_cards(findings: Sequence[OrderFinding], patient_ref: str) -> list[JSON]:
    """Order checks on orders already active (patient-view's order review): the card names the
    order and offers nothing to do to it: an active order is changed in the EHR, not by a card."""
    return [
        _order_card(
            finding,
            f"OI: active order: {finding.recommendation.title}",
            [f"**Active order on file:** {_md(_order_label(finding.order))}", ""],
            [],
        )
        for finding in findings
    ]


def _order_card(finding: OrderFinding, summary: str, lead: list[str], suggestions: list[JSON]) -> JSON:
    rec = finding.recommendation
    offers = finding.action.offers
    detail = [
        *lead,
        _md(rec.description),
        "",
        f"_Why:_ {_md('; '.join(rec.reasons))}.",
        "",
        f"_Source:_ {_md(rec.citation)}.",
    ]
    if offers.note:
        detail += ["", offers.note]
    return _card(
        uuid=card_ids.issue(rec.key),
        summary=summary[:139],
        detail="\n".join(detail),
        indicator=rec.indicator or "info",
        source=card_source(rec),
        suggestions=suggestions or None,
        selectionBehavior="at-most-one" if suggestions else None,
        overrideReasons=override_reasons(offers.override_reasons) if offers.override_reasons else None,
    )


def _order_label(order: JSON) -> str:
    """What an order is for, in the record's words, and which resource it is."""
    concept = order.get("medicationCodeableConcept") or order.get("code") or {}
    codings = [c for c in concept.get("coding") or () if isinstance(c, dict)]
    text = concept.get("text") or next((c["display"] for c in codings if c.get("display")), None)
    if not text and order.get("medicationReference"):
        text = str((order["medicationReference"] or {}).get("display") or "a referenced medication")
    ref = _order_ref(order)
    return f"{text or order['resourceType']}" + (f" ({ref})" if ref else "")


def link_rule_book(cards: Sequence[JSON], base: str) -> None:
    """Each card's source points at its rule in the rule book (/knowledge#<topic>), with the
    service's icon, and carries the same link for EHRs that show links but not source.url."""
    icon = f"{base}/static/icon.png"
    for card in cards:
        source = card["source"]
        url = f"{base}/knowledge#{source['topic']['code']}"
        source["url"] = url
        source["icon"] = icon
        card["links"] = [
            _wire(label="Rule book: this rule, its evidence and codes", url=url, type="absolute")
        ]
