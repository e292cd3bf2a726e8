"""Plots for `nestmac report` as inline SVG text: a labelled scatter and grouped bars, nothing else.

The page must open offline and stand alone, so the plots are drawn here in a few lines of SVG rather than by
a JavaScript library or matplotlib (an optional extra). Every string that reaches the SVG is escaped.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 640, 360
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 72, 16, 16, 48
#: Colours of the series, in order (Okabe-Ito: told apart by colour-blind readers too), then again.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
#: Most bar groups a plot shows: more would be bars thinner than a pixel; the tables have them all.
MAX_GROUPS = 120
#: Legend entries per row.
LEGEND_COLUMNS = 6
#: Bar plots widen to give each bar about this many pixels, up to MAX_WIDTH.
BAR_PIXELS, MAX_WIDTH = 5, 1100


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten apart) covering lo..hi."""
    if not hi > lo:  # one value: a tenth of it either side (one unit about zero)
        pad = abs(lo) / 10 or 1
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi:  # the last tick at or above hi: nothing is drawn outside the frame
        ticks.append(round(first + len(ticks) * step, 12))
    return ticks


def tick_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


class Axes:
    """Linear x and y scales onto the plot area, and the SVG of the frame, ticks and axis titles."""

    def __init__(self, x_ticks: list[float], y_ticks: list[float], width: int = WIDTH):
        self.x_ticks, self.y_ticks = x_ticks, y_ticks
        self.left, self.right = MARGIN_LEFT, width - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def x(self, value: float) -> float:
        lo, hi = self.x_ticks[0], self.x_ticks[-1]
        return self.left + (value - lo) / (hi - lo) * (self.right - self.left)

    def y(self, value: float) -> float:
        lo, hi = self.y_ticks[0], self.y_ticks[-1]
        return self.bottom - (value - lo) / (hi - lo) * (self.bottom - self.top)

    def frame(self, x_title: str, y_title: str, x_labels: bool = True) -> list[str]:
        parts = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="none" stroke="#888"/>'
        ]
        for tick in self.y_ticks:
            y = self.y(tick)
            parts.append(f'<line x1="{self.left}" x2="{self.right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{self.left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_label(tick)}</text>')
        if x_labels:
            for tick in self.x_ticks:
                x = self.x(tick)
                parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.top}" y2="{self.bottom}" stroke="#eee"/>')
                parts.append(f'<text x="{x:.1f}" y="{self.bottom + 16}" text-anchor="middle">{tick_label(tick)}</text>')
        parts.append(
            f'<text x="{(self.left + self.right) / 2}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_title)}</text>'
        )
        parts.append(
            f'<text transform="translate(16 {(self.top + self.bottom) / 2}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_title)}</text>'
        )
        return parts


def svg(title: str, parts: list[str], width: int = WIDTH) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {HEIGHT}" width="{width}" height="{HEIGHT}" '
        f'role="img" font-family="sans-serif" font-size="11"><title>{escape(title)}</title>' + "".join(parts) + "</svg>"
    )


def scatter(title: str, points: list[tuple[str, float, float]], x_title: str, y_title: str) -> str:
    """Labelled points (label, x, y), joined in the order given (a front from one k to the next)."""
    axes = Axes(
        nice_ticks(min(x for _, x, _ in points), max(x for _, x, _ in points)),
        nice_ticks(min(y for _, _, y in points), max(y for _, _, y in points)),
    )
    parts = axes.frame(x_title, y_title)
    path = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for _, x, y in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-opacity="0.4"/>')
    for label, x, y in points:
        cx, cy = axes.x(x), axes.y(y)
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{cx + 6:.1f}" y="{cy - 6:.1f}">{escape(label)}</text>')
    return svg(title, parts)


def grouped_bars(title: str, groups: list[str], series: dict[str, list[float]], y_title: str) -> str:
    """One group of bars per entry of `groups` (e.g. a layer), one bar per series (e.g. a policy) in each,
    with a legend; at most MAX_GROUPS groups are drawn."""
    groups = groups[:MAX_GROUPS]
    values = {name: list(bars)[: len(groups)] for name, bars in series.items()}
    legend_rows = math.ceil(len(values) / LEGEND_COLUMNS)
    top = max(max(bars) for bars in values.values()) * (1 + 0.08 * legend_rows)  # room for the legend
    # Wider for many bars (a few pixels each), up to the width of a page.
    width = min(MAX_WIDTH, max(WIDTH, MARGIN_LEFT + MARGIN_RIGHT + BAR_PIXELS * len(groups) * len(values)))
    axes = Axes([0, 1], nice_ticks(0, top), width)
    parts = axes.frame("", y_title, x_labels=False)
    slot = (axes.right - axes.left) / len(groups)
    bar = slot * 0.8 / len(values)
    for index, (name, bars) in enumerate(values.items()):
        colour = PALETTE[index % len(PALETTE)]
        for position, value in enumerate(bars):
            x = axes.left + position * slot + slot * 0.1 + index * bar
            y = axes.y(value)
            parts.append(
                f'<rect x="{x:.2f}" y="{y:.1f}" width="{bar:.2f}" height="{axes.bottom - y:.1f}" '
                f'fill="{colour}"><title>{escape(groups[position])}, {escape(name)}: {value:,.1f}</title></rect>'
            )
        legend_x = axes.left + 8 + index % LEGEND_COLUMNS * 90
        legend_y = axes.top + 6 + index // LEGEND_COLUMNS * 14
        parts.append(f'<rect x="{legend_x}" y="{legend_y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{legend_y + 9}">{escape(name)}</text>')
    step = max(1, math.ceil(len(groups) / 24))  # at most 24 group labels, turned to fit
    for position in range(0, len(groups), step):
        x = axes.left + (position + 0.5) * slot
        parts.append(
            f'<text transform="translate({x:.1f} {axes.bottom + 10}) rotate(30)" font-size="9">'
            f"{escape(groups[position])}</text>"
        )
    return svg(title, parts, width)
