"""Small server-side SVG charts (no JavaScript, no internet): bars over time and
horizontal bars per item. Labels are escaped here; the result is safe to embed."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape


def _nice_step(value: float) -> float:
    """A round step (1, 2 or 5 times a power of 10) at or above `value`."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.4g}"


def columns(
    points: Sequence[tuple[str, float]],
    *,
    label: str,
    unit: str = "",
    width: int = 900,
    height: int = 240,
) -> Markup:
    """Vertical bars, one per point (e.g. messages per hour); drawn at `width` pixels."""
    left, bottom, top = 48, 28, 12
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = 4 * _nice_step(max((v for _, v in points), default=0) / 4)
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
    every = max(1, math.ceil(n / (width / 70)))
    bar = min(slot * 0.7, 40.0)
    for i, (name, value) in enumerate(points):
        h = plot_h * value / peak
        x = left + i * slot + (slot - bar) / 2
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}" rx="2"><title>{escape(name)}: {escape(_fmt(value))}'
            f"{escape(unit)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 8}" text-anchor="middle">'
                f"{escape(name)}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label above is escaped


def rates(rows: Sequence[tuple[str, float, str]], *, label: str, width: int = 460) -> Markup:
    """Horizontal bars of a share (0..1) per item, with a caption each."""
    row_h, name_w = 30, 150
    height = max(len(rows), 1) * row_h + 8
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
    ]
    bar_w = width - name_w - 90
    for i, (name, share, caption) in enumerate(rows):
        y = 4 + i * row_h
        share = min(max(share, 0.0), 1.0)
        kind = "ok" if share >= 0.9 else "bad" if share < 0.5 else ""
        parts.append(
            f'<text x="0" y="{y + 18}">{escape(name[:22])}</text>'
            f'<rect class="axis" x="{name_w}" y="{y + 6}" width="{bar_w}" height="14" rx="3" '
            f'fill="#eef0f4"/>'
            f'<rect class="bar {kind}" x="{name_w}" y="{y + 6}" width="{bar_w * share:.1f}" '
            f'height="14" rx="3"/>'
            f'<text x="{name_w + bar_w + 8}" y="{y + 18}">{escape(caption)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label above is escaped
