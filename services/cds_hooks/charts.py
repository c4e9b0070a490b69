"""Small server-rendered SVG charts for the admin pages (no script, no CDN: they print too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#2b6cb0", "#38a169", "#dd8a08", "#c53030", "#805ad5", "#718096")


def bars(title: str, categories: Sequence[str], series: Mapping[str, Sequence[int]]) -> str:
    """A grouped bar chart: one group per category (a week), one bar per series, with a legend.
    Each bar carries data-series/data-category/data-value, so the page's numbers can be checked."""
    width, height, left, bottom, top = 720, 240, 40, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max([1, *(v for values in series.values() for v in values)])
    group_w = plot_w / max(1, len(categories))
    bar_w = max(2.0, (group_w - 8) / max(1, len(series)))
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-family="Helvetica" font-size="11">',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="#718096"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    for gi, category in enumerate(categories):
        x0 = left + gi * group_w + 4
        for si, (name, values) in enumerate(series.items()):
            value = values[gi]
            h = plot_h * value / peak
            x = x0 + si * bar_w
            out.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[si % len(PALETTE)]}" data-series="{escape(name)}" '
                f'data-category="{escape(category)}" data-value="{value}"><title>{escape(name)} '
                f"{escape(category)}: {value}</title></rect>"
            )
        out.append(
            f'<text x="{x0 + group_w / 2 - 4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(category)}</text>'
        )
    for si, name in enumerate(series):
        x = left + si * 130
        out.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" fill="{PALETTE[si % len(PALETTE)]}"/>'
        )
        out.append(f'<text x="{x + 14}" y="{height - 5}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def hbars(title: str, rows: Sequence[tuple[str, int]], series: str = "patients") -> str:
    """One horizontal bar per row (long labels: recommendation keys, fact names), each with
    data-series/data-category/data-value as in `bars`."""
    label_w, bar_w, row_h, top = 300, 380, 22, 28
    width, height = label_w + bar_w + 60, top + row_h * max(1, len(rows)) + 8
    peak = max([1, *(v for _, v in rows)])
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-family="Helvetica" font-size="11">',
        f'<text x="0" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (category, value) in enumerate(rows):
        y = top + i * row_h
        w = bar_w * value / peak
        out.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(category)}</text>')
        out.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" fill="{PALETTE[0]}" '
            f'data-series="{escape(series)}" data-category="{escape(category)}" data-value="{value}">'
            f"<title>{escape(category)}: {value}</title></rect>"
        )
        out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{value}</text>')
    out.append("</svg>")
    return "".join(out)
