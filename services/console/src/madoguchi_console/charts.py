"""Small server-rendered SVG charts for the reports (no JavaScript, no external library): they
print, they work offline, and the numbers are in the markup for screen readers."""

from __future__ import annotations

from markupsafe import Markup, escape


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _table(rows: list[tuple[str, float]], title: str) -> str:
    """The chart's numbers as a table, for screen readers and for reading exact values."""
    body = "".join(
        f'<tr><th scope="row">{escape(label)}</th><td class="num">{_fmt(value)}</td></tr>' for label, value in rows
    )
    return (
        f'<details class="chart-data"><summary>{escape(title)}の数値（表）</summary><table><caption class="visually-hidden">'
        f'{escape(title)}</caption><thead><tr><th scope="col">項目</th><th scope="col" class="num">値</th></tr></thead>'
        f"<tbody>{body}</tbody></table></details>"
    )


def hbars(items: list[tuple[str, object]], *, title: str, width: int = 560, label_w: int = 220) -> Markup:
    """Horizontal bars: one row per (label, value)."""
    rows = [(str(label), _num(v)) for label, v in items]
    top = max([v for _, v in rows] + [1.0])
    row_h = 26
    height = row_h * len(rows) + 8
    bar_w = width - label_w - 50
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">']
    for i, (label, value) in enumerate(rows):
        y = 4 + i * row_h
        w = 0 if value <= 0 else max(2.0, bar_w * value / top)
        parts.append(f'<text x="{label_w - 6}" y="{y + 17}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 9}" rx="3"></rect>')
        parts.append(f'<text class="val" x="{label_w + w + 5:.1f}" y="{y + 17}">{_fmt(value)}</text>')
    parts.append("</svg>")
    parts.append(_table(rows, title))
    return Markup("".join(parts))


def columns(items: list[tuple[str, object]], *, title: str, width: int = 560, height: int = 200) -> Markup:
    """Vertical columns, e.g. visitors per hour."""
    rows = [(str(label), _num(v)) for label, v in items]
    if not rows:
        return Markup("")
    top = max([v for _, v in rows] + [1.0])
    plot_h = height - 56
    step = (width - 20) / len(rows)
    col_w = max(4.0, step * 0.6)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<line x1="10" y1="{plot_h + 26}" x2="{width - 10}" y2="{plot_h + 26}" stroke="#c5ccd6"></line>',
    ]
    for i, (label, value) in enumerate(rows):
        x = 10 + i * step + (step - col_w) / 2
        h = 0 if value <= 0 else max(2.0, plot_h * value / top)
        y = plot_h + 26 - h
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{col_w:.1f}" height="{h:.1f}" rx="2"></rect>')
        parts.append(
            f'<text class="val" x="{x + col_w / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_fmt(value) if value else ""}</text>'
        )
        parts.append(f'<text x="{x + col_w / 2:.1f}" y="{plot_h + 44}" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    parts.append(_table(rows, title))
    return Markup("".join(parts))
