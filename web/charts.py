"""Server-rendered SVG pictures (a timeline of lanes with spans, and a line chart of series
over time): pure functions from data to markup, every label escaped, with <title>/<desc> and
a role for screen readers, sized by a viewBox so they read at phone width."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

WIDTH = 360.0
LEFT = 30.0  # room for value labels
RIGHT = 10.0
FONT = 13
LABEL_CHARS = 40
PALETTE = ("#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626")
DASHES = ("", "6 3", "2 2", "8 2 2 2")  # told apart without colour, too
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_TIME_TICKS = 4
MAX_MARKERS = 60  # more points than this are drawn as a line only


@dataclass(frozen=True)
class Lane:
    """One row of a timeline: ``key`` identifies it (data-lane), ``label`` is shown."""

    key: str
    label: str
    spans: Sequence[tuple[datetime, datetime]] = ()
    marks: Sequence[tuple[datetime, datetime]] = ()  # drawn inside the spans (e.g. talking)


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    points: Sequence[tuple[datetime, float]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Words:
    """Translated words a picture needs."""

    title: str
    desc: str
    empty: str
    span: str = ""  # legend of the lane spans (e.g. "connected")
    mark: str = ""  # legend of the marks (e.g. "talking")
    unit: str = ""  # of the values (e.g. "ms")


def esc(text: object) -> str:
    return str(escape(str(text)))


def shorten(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    """Linear map of [lo, hi] onto [out_lo, out_hi]; a degenerate domain maps to the middle."""
    if hi == lo:
        return (out_lo + out_hi) / 2.0
    ratio = min(1.0, max(0.0, (value - lo) / (hi - lo)))
    return out_lo + ratio * (out_hi - out_lo)


def time_x(at: datetime, start: datetime, end: datetime, x0: float = LEFT, x1: float = WIDTH - RIGHT) -> float:
    return scale(at.timestamp(), start.timestamp(), end.timestamp(), x0, x1)


def time_ticks(start: datetime, end: datetime, timezone: str) -> list[tuple[datetime, str]]:
    """At most MAX_TIME_TICKS round moments in [start, end] labelled in ``timezone``
    (HH:mm, or HH:mm:ss when the step is below a minute)."""
    if end <= start:
        local = start.astimezone(ZoneInfo(timezone))
        return [(start, local.strftime("%H:%M:%S"))]
    span = (end - start).total_seconds()
    step = next((s for s in TIME_STEPS if span / s <= MAX_TIME_TICKS), TIME_STEPS[-1])
    zone = ZoneInfo(timezone)
    local_start = start.astimezone(zone)
    midnight = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (local_start - midnight).total_seconds()
    tick = midnight + timedelta(seconds=math.ceil(offset / step) * step)
    fmt = "%H:%M:%S" if step < 60 else "%H:%M"
    ticks = []
    while tick <= end and len(ticks) <= MAX_TIME_TICKS:
        ticks.append((tick, tick.astimezone(zone).strftime(fmt)))
        tick += timedelta(seconds=step)
    return ticks


def nice_max(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if factor * power >= value - 1e-12:
            return factor * power
    return 10.0 * power


def number(value: float) -> str:
    """At most two decimals, no trailing zeros: 2, 0.25, 12.5."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _open(svg_id: str, height: float, words: Words, kind: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{esc(kind)}" '
            f'viewBox="0 0 {WIDTH:.0f} {height:.0f}" role="img" aria-labelledby="{esc(svg_id)}-t {esc(svg_id)}-d" '
            f'font-size="{FONT}" font-family="system-ui, sans-serif">',
            f'<title id="{esc(svg_id)}-t">{esc(words.title)}</title>',
            f'<desc id="{esc(svg_id)}-d">{esc(words.desc)}</desc>']


def _axis(ticks: list[tuple[datetime, str]], start: datetime, end: datetime, top: float, bottom: float) -> list[str]:
    parts = ['<g class="axis" fill="#6b7280" stroke="#e5e7eb">']
    for at, label in ticks:
        x = time_x(at, start, end)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>'
                     f'<text x="{x:.1f}" y="{bottom + FONT + 2:.1f}" text-anchor="middle" stroke="none">'
                     f'{esc(label)}</text>')
    parts.append("</g>")
    return parts


def _empty(svg_id: str, words: Words, kind: str) -> Markup:
    parts = _open(svg_id, 40, words, kind)
    parts.append(f'<text x="{WIDTH / 2:.0f}" y="24" text-anchor="middle" fill="#6b7280">{esc(words.empty)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _span_title(label: str, start: datetime, end: datetime, timezone: str, what: str) -> str:
    zone = ZoneInfo(timezone)
    return f"{label}: {what} {start.astimezone(zone):%H:%M:%S}–{end.astimezone(zone):%H:%M:%S}"


def timeline_svg(svg_id: str, lanes: Sequence[Lane], start: datetime, end: datetime, timezone: str,
                 words: Words) -> Markup:
    """One lane per entry of ``lanes``: its label on a line of its own, below it a bar per span
    and, inside, a darker bar per mark; a time axis at the bottom and a legend."""
    if not lanes:
        return _empty(svg_id, words, "timeline")
    lane_height, bar = 36.0, 12.0
    top = 6.0
    bottom = top + lane_height * len(lanes)
    height = bottom + FONT + 8 + 20
    parts = _open(svg_id, height, words, "timeline")
    parts += _axis(time_ticks(start, end, timezone), start, end, top, bottom)
    for index, lane in enumerate(lanes):
        y = top + index * lane_height
        label = shorten(lane.label)
        parts.append(f'<g class="lane" data-lane="{esc(lane.key)}" data-spans="{len(lane.spans)}" '
                     f'data-marks="{len(lane.marks)}">')
        parts.append(f'<text x="{LEFT:.0f}" y="{y + FONT:.1f}" fill="#111827">{esc(label)}</text>')
        bar_y = y + FONT + 4
        parts.append(f'<rect x="{LEFT:.0f}" y="{bar_y:.1f}" width="{WIDTH - LEFT - RIGHT:.0f}" height="{bar:.0f}" '
                     f'fill="#f3f4f6"/>')
        for kind, spans, colour, inset in (("span", lane.spans, "#93c5fd", 0.0),
                                           ("mark", lane.marks, "#1d4ed8", 3.0)):
            for span_start, span_end in spans:
                x0, x1 = time_x(span_start, start, end), time_x(span_end, start, end)
                what = words.span if kind == "span" else words.mark
                parts.append(f'<rect class="{kind}" x="{x0:.1f}" y="{bar_y + inset:.1f}" '
                             f'width="{max(1.0, x1 - x0):.1f}" height="{bar - 2 * inset:.0f}" fill="{colour}">'
                             f'<title>{esc(_span_title(label, span_start, span_end, timezone, what))}</title></rect>')
        parts.append("</g>")
    legend_y = bottom + FONT + 20
    parts.append('<g class="legend">'
                 f'<rect x="{LEFT:.0f}" y="{legend_y - 9:.0f}" width="14" height="10" fill="#93c5fd"/>'
                 f'<text x="{LEFT + 18:.0f}" y="{legend_y:.0f}">{esc(words.span)}</text>'
                 f'<rect x="{LEFT + 140:.0f}" y="{legend_y - 9:.0f}" width="14" height="10" fill="#1d4ed8"/>'
                 f'<text x="{LEFT + 158:.0f}" y="{legend_y:.0f}">{esc(words.mark)}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart_svg(svg_id: str, series: Sequence[Series], start: datetime, end: datetime, timezone: str,
                   words: Words) -> Markup:
    """A line per series over [start, end] with a value axis from 0 to a round maximum,
    a marker per point (up to MAX_MARKERS per series) and a legend with one line per series."""
    if not any(s.points for s in series):
        return _empty(svg_id, words, "line")
    plot_top, plot_bottom = 8.0, 128.0
    top_value = nice_max(max(v for s in series for _, v in s.points))
    legend_top = plot_bottom + FONT + 24
    height = legend_top + (FONT + 5) * len(series)
    parts = _open(svg_id, height, words, "line")
    parts += _axis(time_ticks(start, end, timezone), start, end, plot_top, plot_bottom)
    parts.append('<g class="values" fill="#6b7280" stroke="#e5e7eb">')
    for fraction in (0.0, 0.5, 1.0):
        y = scale(fraction, 0, 1, plot_bottom, plot_top)
        parts.append(f'<line x1="{LEFT:.0f}" x2="{WIDTH - RIGHT:.0f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{LEFT - 4:.0f}" y="{y + 4:.1f}" text-anchor="end" stroke="none">'
                     f'{esc(number(top_value * fraction))}</text>')
    parts.append(f'<text x="{LEFT:.0f}" y="{plot_top - 1:.0f}" stroke="none" dx="4" dy="9">'
                 f'{esc(words.unit)}</text></g>')
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        dash = f' stroke-dasharray="{DASHES[index % len(DASHES)]}"' if DASHES[index % len(DASHES)] else ""
        label = shorten(one.label)
        coords = [(time_x(at, start, end), scale(value, 0, top_value, plot_bottom, plot_top))
                  for at, value in one.points]
        parts.append(f'<g class="series" data-series="{esc(one.key)}" data-points="{len(coords)}" '
                     f'stroke="{colour}" fill="{colour}">')
        if len(coords) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline points="{points}" fill="none" stroke-width="2"{dash}/>')
        if len(coords) <= MAX_MARKERS:
            for (x, y), (at, value) in zip(coords, one.points, strict=True):
                local = at.astimezone(ZoneInfo(timezone))
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>'
                             f'{esc(f"{label}: {number(value)} {words.unit} ({local:%H:%M:%S})")}</title></circle>')
        legend_y = legend_top + (FONT + 5) * index
        parts.append(f'<line x1="{LEFT:.0f}" x2="{LEFT + 20:.0f}" y1="{legend_y - 4:.0f}" y2="{legend_y - 4:.0f}" '
                     f'stroke-width="3"{dash}/>'
                     f'<text x="{LEFT + 26:.0f}" y="{legend_y:.0f}" fill="#111827" stroke="none">{esc(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))
