"""`madoguchi desk ...`: calendar questions from the configuration, without a server.

madoguchi desk calendar --date 2021-04-04 --desk chuo-1
madoguchi desk business-days --start 2021-04-26 --end 2021-05-09
madoguchi desk desks
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from madoguchi_shared.calendar import TOKYO
from madoguchi_shared.municipality import load_municipality
from madoguchi_shared.settings import Settings

app = typer.Typer(help="Desk service (窓口): opening calendar and desks.", no_args_is_help=True)

Municipality = Annotated[
    str | None, typer.Option("--municipality", "-m", help="6-digit code or TOML path (default: settings)")
]


def _load(municipality: str | None):
    settings = Settings()
    if municipality:
        return load_municipality(municipality)
    if settings.config_file:
        return load_municipality(settings.config_file, code=settings.municipality)
    return load_municipality(settings.municipality)


@app.command()
def calendar(
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today in Asia/Tokyo)")] = None,
    desk: Annotated[str | None, typer.Option(help="desk id, e.g. chuo-1")] = None,
    municipality: Municipality = None,
) -> None:
    """Print a date's opening hours and the next business day (DESK-1)."""
    m = _load(municipality)
    cal = m.calendar()
    d = date.fromisoformat(day) if day else datetime.now(TOKYO).date()
    hours = cal.hours(d, desk)
    info = hours.as_dict()
    label = "、".join(f"{s:%H:%M}～{e:%H:%M}" for s, e in hours.intervals) or "閉庁"
    typer.echo(f"{m.name_ja} {desk or '全窓口'} {d.isoformat()}（{'月火水木金土日'[d.weekday()]}）: {label}")
    typer.echo(
        f"  kind={info['kind']} business_day={info['business_day']} closed_reason={info['closed_reason']}"
        + (f" holiday={info['holiday']}" if info["holiday"] else "")
    )
    typer.echo(
        f"  next business day: {cal.next_business_day(d).isoformat()}"
        f" (deadline 翌営業日中: {cal.next_business_day_deadline(d):%Y-%m-%d %H:%M})"
    )


@app.command("business-days")
def business_days(
    start: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="YYYY-MM-DD")],
    municipality: Municipality = None,
) -> None:
    """List the business days in [start, end]."""
    cal = _load(municipality).calendar()
    days = cal.business_days(date.fromisoformat(start), date.fromisoformat(end))
    for d in days:
        typer.echo(d.isoformat())
    typer.echo(f"{len(days)} business days")


@app.command()
def desks(municipality: Municipality = None) -> None:
    """List the configured wards and desks (ORG-1)."""
    m = _load(municipality)
    typer.echo(f"{m.code} {m.name_ja}")
    for w in m.wards:
        for dk in w.desks:
            typer.echo(f"  {dk.id:14s} {w.name_ja:6s} {dk.name_ja}  (想定 {dk.expected_max_visitors}人/日)")
