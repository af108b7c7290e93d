"""A session's power and energy curve as inline SVG, drawn on the server.

No chart library and no script: the curve must render offline, without JavaScript, and be
re-sent whole by the live socket when a meter value arrives (a few kilobytes).
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT = 44, 12
PANEL_HEIGHT = 120
# Top edges of the power and the energy panel, each under its label; time labels go below.
PANELS = (32, 202)
# More points than pixels only cost bytes: thin the series to about one point per 1.5 px.
MAX_POINTS = 420
TIME_STEPS = [60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


@dataclass(frozen=True, slots=True)
class Curve:
    power: list[tuple[datetime, float]] = field(default_factory=list)  # kW
    energy: list[tuple[datetime, float]] = field(default_factory=list)  # kWh delivered


def session_chart(curve: Curve, tz: ZoneInfo) -> SafeString | None:
    """Two panels on one time axis (power above, energy below); None if there is nothing to draw."""
    points = curve.power + curve.energy
    if not points:
        return None
    start = min(at for at, _ in points)
    end = max(at for at, _ in points)
    span = max((end - start).total_seconds(), 60.0)

    def x(at: datetime) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (at - start).total_seconds() / span

    panels = [
        _panel(_thin(curve.power), PANELS[0], "kW", "power", x),
        _panel(_thin(curve.energy), PANELS[1], "kWh", "energy", x),
    ]
    axis_y = PANELS[1] + PANEL_HEIGHT
    time_ticks = format_html_join(
        "", '<line class="gridline" x1="{0}" x2="{0}" y1="{1}" y2="{2}"/>'
        '<text class="tick" x="{0}" y="{3}" text-anchor="middle">{4}</text>',
        ((f"{x(at):.1f}", PANELS[0], axis_y, axis_y + 18, label)
         for at, label in _time_ticks(start, end, tz)),
    )
    peak = max((kw for _, kw in curve.power), default=None)
    delivered = curve.energy[-1][1] if curve.energy else None
    summary = ", ".join(filter(None, [
        f"peak power {peak:.1f} kW" if peak is not None else "",
        f"{delivered:.2f} kWh delivered" if delivered is not None else "",
        f"from {_clock(start, tz)} to {_clock(end, tz)}",
    ]))
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-labelledby="chart-title '
        'chart-desc" preserveAspectRatio="xMidYMid meet">'
        '<title id="chart-title">Power and energy over the session</title>'
        '<desc id="chart-desc">{}</desc>{}{}{}</svg>',
        WIDTH, HEIGHT, summary[:1].upper() + summary[1:], panels[0], panels[1], time_ticks,
    )


def _clock(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M %Z")


def _panel(points: list[tuple[datetime, float]], top: int, unit: str, kind: str,
           x) -> SafeString:
    label = format_html('<text class="axis-label" x="{}" y="{}">{}</text>', LEFT, top - 26,
                        f"{kind.capitalize()} ({unit})")
    if not points:
        return format_html('{}<text class="tick" x="{}" y="{}">no {} readings</text>', label,
                           LEFT + 8, top + PANEL_HEIGHT // 2, kind)
    step, ceiling = _nice_scale(max(value for _, value in points))
    bottom = top + PANEL_HEIGHT

    def y(value: float) -> float:
        return bottom - PANEL_HEIGHT * max(value, 0.0) / ceiling

    ticks = format_html_join(
        "", '<line class="gridline" x1="{0}" x2="{1}" y1="{2}" y2="{2}"/>'
        '<text class="tick" x="{3}" y="{4}" text-anchor="end">{5}</text>',
        ((LEFT, WIDTH - RIGHT, f"{y(value):.1f}", LEFT - 6, f"{y(value) + 4:.1f}",
          _number(value))
         for value in (step * i for i in range(round(ceiling / step) + 1))),
    )
    line = " ".join(f"{x(at):.1f},{y(value):.1f}" for at, value in points)
    if len(points) == 1:
        shape = format_html('<circle class="series {}" cx="{}" cy="{}" r="3"/>', kind,
                            f"{x(points[0][0]):.1f}", f"{y(points[0][1]):.1f}")
    else:
        area = f"{x(points[0][0]):.1f},{bottom} {line} {x(points[-1][0]):.1f},{bottom}"
        shape = format_html('<polygon class="area {}" points="{}"/>'
                            '<polyline class="series {}" points="{}"/>', kind, area, kind, line)
    return format_html("{}{}{}", label, ticks, shape)


def _thin(points: list[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """At most MAX_POINTS, each the mean of a run of neighbours; the last point kept exact."""
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / MAX_POINTS)
    thinned = [
        (run[len(run) // 2][0], sum(value for _, value in run) / len(run))
        for run in (points[i:i + size] for i in range(0, len(points) - 1, size))
    ]
    return [*thinned, points[-1]]


def _nice_scale(maximum: float, ticks: int = 4) -> tuple[float, float]:
    """A round tick step (1, 2, 2.5 or 5 times a power of ten) and the axis top it gives."""
    if maximum <= 0:
        return 1.0, 1.0
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step, step * math.ceil(maximum / step - 1e-9)


def _number(value: float) -> str:
    return f"{value:g}" if value >= 1 or value == 0 else f"{value:.2g}"


def _time_ticks(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[datetime, str]]:
    """About five ticks on round local times (every 5 min, 1 h, ...), in the site's zone."""
    span = max((end - start).total_seconds(), 60.0)
    step = next((s for s in TIME_STEPS if s >= span / 5), TIME_STEPS[-1])
    local = start.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds()
    at = midnight + timedelta(seconds=math.ceil(elapsed / step) * step)
    label = "%d %b %H:%M" if end - start > timedelta(days=1) else "%H:%M"
    ticks = []
    while at <= end:
        ticks.append((at, at.strftime(label)))
        at += timedelta(seconds=step)
    return ticks
