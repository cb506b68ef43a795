"""Small server-side SVG charts (no JavaScript, no internet): bars over time and
horizontal bars per item. Labels are escaped here; the result is safe to embed."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5 or 5 times a power of 10)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.4g}"


def columns(
    points: Sequence[tuple[str, float]], *, label: str, unit: str = "", height: int = 220
) -> Markup:
    """Vertical bars, one per point (e.g. messages per hour)."""
    width, left, bottom, top = 640, 44, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = _nice_max(max((v for _, v in points), default=0))
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
    ]
    for i in range(5):  # grid lines and y labels
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="axis" x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(value))}</text>'
        )
    n = max(len(points), 1)
    slot = plot_w / n
    every = max(1, math.ceil(n / 8))
    for i, (name, value) in enumerate(points):
        h = plot_h * value / peak
        x = left + i * slot + slot * 0.15
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" rx="2"><title>{escape(name)}: {escape(_fmt(value))}'
            f"{escape(unit)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle">'
                f"{escape(name)}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label above is escaped


def rates(rows: Sequence[tuple[str, float, str]], *, label: str) -> Markup:
    """Horizontal bars of a share (0..1) per item, with a caption each."""
    width, row_h, name_w = 640, 30, 170
    height = max(len(rows), 1) * row_h + 8
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
    ]
    bar_w = width - name_w - 120
    for i, (name, share, caption) in enumerate(rows):
        y = 4 + i * row_h
        share = min(max(share, 0.0), 1.0)
        kind = "ok" if share >= 0.9 else "bad" if share < 0.5 else ""
        parts.append(
            f'<text x="0" y="{y + 18}">{escape(name[:26])}</text>'
            f'<rect class="axis" x="{name_w}" y="{y + 6}" width="{bar_w}" height="14" rx="3" '
            f'fill="#eef0f4"/>'
            f'<rect class="bar {kind}" x="{name_w}" y="{y + 6}" width="{bar_w * share:.1f}" '
            f'height="14" rx="3"/>'
            f'<text x="{name_w + bar_w + 8}" y="{y + 18}">{escape(caption)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label above is escaped
