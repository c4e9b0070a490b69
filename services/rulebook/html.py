"""The rule book as one self-contained HTML document (inline CSS and SVG; prints to PDF)."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from services.plan_builder.types import JSON
from services.rulebook.book import Book, Rule
from services.rulebook.diagram import MISSING

CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1d2330; max-width: 980px;
       margin: 0 auto; padding: 24px; font-size: 13px; line-height: 1.45; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 19px; border-bottom: 2px solid #24324a;
     padding-bottom: 3px; margin-top: 28px; } h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { border: 1px solid #cbd5e0; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #edf2f7; }
table.kv th { width: 24%; }
blockquote { margin: 4px 0; padding: 4px 10px; border-left: 4px solid #2b6cb0; background: #f7fafc; }
code { font-size: 12px; background: #edf2f7; padding: 0 3px; overflow-wrap: anywhere; }
.rule { border: 1px solid #cbd5e0; border-radius: 6px; padding: 4px 14px 10px; margin: 14px 0;
        break-inside: avoid-page; }
.warning { border-left: 6px solid #dd8a08; } .pass { color: #276749; font-weight: 600; }
.fail { color: #c53030; font-weight: 700; } .muted { color: #555; }
.chapter { break-before: page; } nav ol { columns: 2; }
svg { max-width: 100%; height: auto; }
@page { size: A4; margin: 16mm 14mm; }
"""


def _e(value: Any) -> str:
    return escape(str(value))


def _rows(pairs: list[tuple[str, str]]) -> str:
    return (
        "<table class='kv'>"
        + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
        + "</table>"
    )


def _markdown(text: str) -> str:
    """The changelog's small Markdown subset: ## headings and - bullets with continuation lines."""
    html: list[str] = []
    item: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if item:
            html.append(f"<li>{_inline(' '.join(item))}</li>")
            item.clear()
        if para:
            html.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    in_list = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("## "):
            flush()
            if in_list:
                html.append("</ul>")
                in_list = False
            html.append(f"<h3>{_inline(stripped[3:])}</h3>")
        elif stripped.startswith("- "):
            flush()
            if not in_list:
                html.append("<ul>")
                in_list = True
            item.append(stripped[2:])
        elif stripped:
            (item if item else para).append(stripped)
        else:
            flush()
    flush()
    if in_list:
        html.append("</ul>")
    return "\n".join(html)


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _rule(rule: Rule, book: Book) -> str:
    facts = "".join(
        f"<tr><td><code>%facts.{_e(f.name)}</code></td><td>{_e(f.meaning)}"
        + "".join(
            f"<br><span class='muted'>site threshold {_e(what)}: <b>{_e(v)}</b></span>"
            for _, what, v in f.thresholds
        )
        + "</td></tr>"
        for f in rule.facts
    )
    facts += "".join(
        f"<tr><td><code>%order.{_e(n)}</code></td><td>{_e(ORDER_MEANING.get(n, n))}</td></tr>"
        for n in rule.order_facts
    )
    unknown = (
        "If "
        + ", ".join(f"<code>{_e(n)}</code>" for n in rule.withheld_when_unknown)
        + " is unknown and decides the condition, the recommendation is <b>withheld</b> (not given, not denied) and the "
        "care plan notes what is missing."
        if rule.withheld_when_unknown
        else "Every fact it reads is always known (true or false): it is never withheld."
    )
    codes = ", ".join(
        f"<a href='#vs-{_e(v)}'>{_e(book.value_sets[v].get('title', v))}</a>"
        for v in rule.value_sets
        if v in book.value_sets
    )
    fire = [x for x in rule.examples if rule.key in x.expected]
    not_fire = [x for x in rule.examples if rule.key in x.absent]
    examples = "".join(
        f"<tr><td>{_e(x.id)}</td><td>{_e(x.hook)}</td><td>{_e(x.note)}</td>"
        f"<td>{'fired' if rule.key in x.got else 'did not fire'}</td>"
        f"<td class='{'pass' if rule.key in x.got else 'fail'}'>{'pass' if rule.key in x.got else 'FAIL'}</td></tr>"
        for x in fire
    )
    wrong = [x.id for x in not_fire if rule.key in x.got]
    absent = (
        f"<p>Must not fire for {len(not_fire)} other example patients: "
        + (
            f"<span class='fail'>it FIRED for {_e(', '.join(wrong))}</span>"
            if wrong
            else "<span class='pass'>it fired for none of them</span>"
        )
        + ".</p>"
    )
    if book.examples is None:
        examples_html = "<p class='muted'>The example patients are not in this installation (build the book from a source checkout: <code>oi-cds rulebook</code>).</p>"
    elif fire:
        examples_html = (
            "<p>Must fire for:</p><table><tr><th>patient</th><th>hook</th><th>case</th><th>now</th><th>result</th></tr>"
            + examples
            + "</table>"
            + absent
        )
    else:
        examples_html = "<p class='fail'>No example patient is expected to get this rule.</p>" + absent
    return f"""
<section class="rule {"warning" if rule.indicator == "warning" else ""}" id="{_e(rule.anchor)}">
<h3>{_e(rule.title)} <span class="muted">(<code>{_e(rule.key)}</code>, {_e(rule.plan)}, card: {_e(rule.indicator)})</span></h3>
{_rows([("Recommends", rule.recommends), ("Applies when", rule.when)])}
<p class="muted">Condition as the service evaluates it (FHIRPath): <code>{_e(rule.expression)}</code></p>
<table><tr><th>fact it reads</th><th>what it means</th></tr>{facts}</table>
<p>{unknown}</p>
<p><b>Rests on</b> {_e(rule.citation)}:</p>
{"".join(f"<blockquote>{_e(q)}</blockquote>" for q in rule.quotes)}
<p><b>Codes:</b> {codes or "none (the facts it reads are not coded)"}</p>
{("<p><b>The card offers:</b> " + "; ".join(_e(o) for o in rule.offers) + "</p>") if rule.offers else ""}
<p><b>Example patients</b></p>
{examples_html}
</section>"""


ORDER_MEANING = {
    "drugGroup": "the drafted medication's drug group (by code or name; the first group by precedence)",
    "rodType": "the drafted rod's type: telescoping | non-telescoping (by code or name)",
    "boneSize": "bone size at the order's bodySite, else the smallest measured: small | fits | unknown",
}


def _value_set(vid: str, vs: JSON) -> str:
    rows = []
    for inc in vs.get("compose", {}).get("include", []):
        system = inc.get("system", "")
        for c in inc.get("concept", []):
            rows.append((system, c.get("code", ""), c.get("display", "")))
        for f in inc.get("filter", []):
            rows.append((system, f"{f.get('property')} {f.get('op')} {f.get('value')}", "(filter)"))
        for child in inc.get("valueSet", []):
            cid = child.rsplit("/", 1)[-1]
            rows.append(("", f"all of {cid}", "(value set)"))
    names = [
        f"{e['url'].rsplit('/', 1)[-1].removeprefix('valueset-')}: {e.get('valueString', e.get('valueInteger', e.get('valueCoding', '')))}"
        for e in vs.get("extension", [])
    ]
    table = "".join(
        f"<tr><td>{_e(s)}</td><td><code>{_e(c)}</code></td><td>{_e(d)}</td></tr>" for s, c, d in rows
    )
    return (
        f"<section id='vs-{_e(vid)}'><h3>{_e(vs.get('title', vid))} <span class='muted'>(<code>{_e(vid)}</code>)</span></h3>"
        + (f"<p>{_e(vs['description'])}</p>" if vs.get("description") else "")
        + f"<table><tr><th>system</th><th>code</th><th>display</th></tr>{table}</table>"
        + (f"<p class='muted'>Also matched: {_e('; '.join(names))}</p>" if names else "")
        + "</section>"
    )


def render(book: Book, diagram: str | None, built_on: str) -> str:
    passed = sum(x.passed for x in book.examples or ())
    total = len(book.examples or ())
    versions = ", ".join(f"{t} {v}" for t, v in book.versions.items())
    attributes = "".join(
        f"<h3>{_e(a.name)} <span class='muted'>({_e(a.artifact)})</span></h3>{_rows(a.rows())}"
        for a in book.attributes
    )
    thresholds = [
        (str(info.description), str(getattr(book.settings, name)))
        for name, info in type(book.settings).model_fields.items()
    ]
    toc = "".join(f"<li><a href='#{_e(r.anchor)}'>{_e(r.title)}</a></li>" for r in book.rules)
    examples = (
        "<p class='muted'>Not in this installation.</p>"
        if book.examples is None
        else "<table><tr><th>patient</th><th>hook</th><th>case</th><th>result</th></tr>"
        + "".join(
            f"<tr><td>{_e(x.id)}</td><td>{_e(x.hook)}</td><td>{_e(x.note)}</td><td class='{'pass' if x.passed else 'fail'}'>{'pass' if x.passed else 'FAIL'}</td></tr>"
            for x in book.examples
        )
        + "</table>"
    )
    diff = "".join(f"<li>{_e(d)}</li>" for d in book.artifact_diff)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(book.title)}: {_e(versions)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>{_e(book.title)}</h1>
<p><b>{_e(versions)}</b>. Generated from the knowledge artifacts (<code>fhir_profiles/</code>) on {_e(built_on)};
never edited by hand. {len(book.rules)} rules; example patients: {passed} of {total} pass now.</p>
<p>For a CDS or pharmacy and therapeutics committee: what each rule does, when, on what evidence, with which codes,
and how it behaves on example patients. Every card the service shows links to its rule here.</p>
<nav><h3>Rules</h3><ol>{toc}</ol></nav>

<h2 class="chapter">1. Source attributes</h2>
<p>In the spirit of the ONC HTI-1 source-attribute requirements for evidence-based decision support
interventions. Every rule of a PlanDefinition shares its attributes; each rule's own evidence is under the rule.</p>
{attributes}

<h2>2. What changed</h2>
{_markdown(book.changes) if book.changes else "<p class='muted'>The knowledge changelog is not in this installation.</p>"}
{("<h3>Artifact differences from the previous version</h3><ul>" + diff + "</ul>") if diff else ""}

<h2 class="chapter">3. Decision structure</h2>
<p>Which facts feed which rules (grey: patient facts; blue: facts of a drafted order; orange: warning cards).</p>
{diagram or f"<p class='muted'>{_e(MISSING)}</p>"}
<h3>Site thresholds in force</h3>
{_rows(thresholds)}

<h2 class="chapter">4. The rules</h2>
<section id="careplan-summary"><h3>The summary card (patient-view)</h3>
<p>Lists every recommendation below that applies, each with its reason and source, and offers to create (or update)
a draft CarePlan; it says the plan on file is current when it already holds exactly these recommendations.</p></section>
<section id="checks-not-run"><h3>"OI checks could not run"</h3>
<p>Shown instead of an error only where a site asks for it (<code>OI_CDS_ON_MISSING_DATA=card</code>): the patient's
required data could not be had, so no rule ran. It is not an all-clear.</p></section>
{"".join(_rule(r, book) for r in book.rules)}

<h2 class="chapter">5. Code lists</h2>
{"".join(_value_set(vid, vs) for vid, vs in sorted(book.value_sets.items()))}

<h2 class="chapter">6. Example patients</h2>
{examples}
</body></html>
"""
