"""Which facts feed which recommendations, drawn by Graphviz (Debian's ``graphviz``) as SVG."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from services.rulebook.book import Rule

FACT_STYLE = "shape=ellipse, style=filled, fillcolor="
RULE_STYLE = 'shape=box, style="rounded,filled", fillcolor='
COLOURS = {"warning": "#f6ad55", "critical": "#fc8181"}
MISSING = "Graphviz (dot) is not installed here, so the diagram is not drawn: apt-get install graphviz"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source(rules: Sequence[Rule]) -> str:
    lines = [
        "digraph rules {",
        "  rankdir=LR; nodesep=0.12; ranksep=1.4;",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [color="#8894a8", arrowsize=0.5];',
    ]
    facts = sorted({f.name for r in rules for f in r.facts})
    order = sorted({f"order.{n}" for r in rules for n in r.order_facts})
    for name in facts:
        lines.append(f'  {_quote("f:" + name)} [label={_quote(name)}, {FACT_STYLE}"#e2e8f0"];')
    for name in order:
        lines.append(f'  {_quote("f:" + name)} [label={_quote(name)}, {FACT_STYLE}"#c3dafe"];')
    for plan in dict.fromkeys(r.plan for r in rules):
        lines.append(
            f"  subgraph {_quote('cluster_' + plan)} {{ label={_quote(plan)}; "
            'fontname=Helvetica; color="#cbd5e0";'
        )
        for r in (r for r in rules if r.plan == plan):
            colour = COLOURS.get(r.indicator, "#ffffff")
            lines.append(
                f'    {_quote("r:" + r.anchor)} [label={_quote(r.anchor)}, {RULE_STYLE}"{colour}", '
                f"URL={_quote('#' + r.anchor)}];"
            )
        lines.append("  }")
    for r in rules:
        for f in r.facts:
            lines.append(f"  {_quote('f:' + f.name)} -> {_quote('r:' + r.anchor)};")
        for n in r.order_facts:
            lines.append(f"  {_quote('f:order.' + n)} -> {_quote('r:' + r.anchor)};")
    lines.append("}")
    return "\n".join(lines)


def svg(rules: Sequence[Rule]) -> str | None:
    """The diagram as inline SVG; None when Graphviz is not installed (the book says so)."""
    dot = shutil.which("dot")
    if dot is None:
        return None
    done = subprocess.run(
        [dot, "-Tsvg"], input=dot_source(rules), capture_output=True, text=True, check=True, timeout=60
    )
    out = done.stdout
    return out[out.index("<svg") :]
