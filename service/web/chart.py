"""The program's timeline as an inline SVG, drawn on the server: sessions and emails per day."""

from __future__ import annotations

from datetime import date
from xml.sax.saxutils import escape

WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 960, 180, 14, 26, 30


def timeline_svg(days: list[tuple[date, int, int]]) -> str:
    """Bars for sessions, a line for emails, each on its own scale (labelled at the left and right)."""
    if not days:
        return ""
    most_sessions = max(1, max(s for _, s, _ in days))
    most_emails = max(1, max(e for _, _, e in days))
    inner = HEIGHT - TOP - BOTTOM
    step = (WIDTH - 2 * LEFT) / len(days)
    parts = [
        (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" xmlns="http://www.w3.org/2000/svg"'
            f' aria-label="Sessions and emails per day, {days[0][0]:%d %b} to {days[-1][0]:%d %b %Y}">'
        ),
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#9ca3af"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" class="axis s">{most_sessions}</text>',
        f'<text x="{WIDTH - LEFT + 4}" y="{TOP + 4}" class="axis e">{most_emails}</text>',
    ]
    points = []
    for n, (day, sessions, emails) in enumerate(days):
        x = LEFT + n * step
        if sessions:
            h = inner * sessions / most_sessions
            parts.append(
                f'<rect x="{x + step * 0.15:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{max(step * 0.7, 1):.1f}" height="{h:.1f}"'
                f' fill="#2563eb"><title>{escape(f"{day:%a %d %b}: {sessions} session(s), {emails} email(s)")}</title></rect>'
            )
        points.append(f"{x + step / 2:.1f},{HEIGHT - BOTTOM - inner * emails / most_emails:.1f}")
        if day.weekday() == 0 or n == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" class="axis">{day:%d %b}</text>')
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#d97706" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)
