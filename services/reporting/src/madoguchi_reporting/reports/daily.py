"""The daily reports: one desk (REP-1), the phone line (REP-2), every desk of the city (issue 16)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from madoguchi_shared import db
from madoguchi_shared.events.report import line_scope_id, report_id

from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports import tables as t
from madoguchi_reporting.reports.common import CITY_NOTES, DESK_NOTES, LINE_NOTES, data_revision, frame, revision_info
from madoguchi_reporting.reports.compute import (
    city_desk_row,
    city_line_row,
    counts_sum,
    desk_figures,
    flatten,
    line_figures,
    opening_hours,
)
from madoguchi_reporting.schema import SCHEMA as S


def _intervals(hours: Any) -> list[tuple[str, str]]:
    return [(s.strftime("%H:%M"), e.strftime("%H:%M")) for s, e in hours.intervals]


def _hours_ja(hours: Any) -> str:
    return "、".join(f"{s}～{e}" for s, e in _intervals(hours))


async def desk_daily(
    conn: db.Connection, cfg: ReportConfig, m: str, desk: str, day: dt.date, *, with_revision: bool = True
) -> md.DeskDaily:
    """REP-1: one desk's daily report."""
    counts = t.with_unserved(
        await t.counts(conn, m, "desk", [desk], day, day), await t.unserved(conn, m, [desk], day, day)
    )
    wait, service = await t.visit_stats(conn, m, [desk], day, day)
    hours = (await cfg.calendar(conn, m)).hours(day, desk)
    opening = opening_hours(hours)
    row = await conn.fetchrow(
        f"""SELECT ward, started_at, ended_at, stops FROM "{S}".desk_day
            WHERE municipality = $1 AND desk = $2 AND day = $3""",
        m,
        desk,
        day,
    )
    ward = row["ward"] if row else cfg.ward_of(m, desk)
    rid = report_id("daily", desk, day)
    figures = desk_figures(counts, wait, service, opening)
    revision = None
    if with_revision:
        revision = await revision_info(conn, m, rid, flatten(figures), await data_revision(conn, m, "desk", desk, day))
    return md.DeskDaily(
        **frame(cfg, m, rid, day, day),
        scope_id=desk,
        ward=ward,
        ward_name=cfg.ward_name(m, ward) if ward else None,
        desk=desk,
        desk_name=cfg.desk_name(m, desk),
        date=day,
        title=f"日次報告書（窓口）　{cfg.ward_name(m, ward) if ward else desk}",
        opening=md.DeskOpening(
            kind=hours.kind if hours.open_day else "closed",
            closed_reason=hours.closed_reason,
            intervals=_intervals(hours),
            hours=opening,
            day_started_at=row["started_at"].isoformat() if row and row["started_at"] else None,
            day_ended_at=row["ended_at"].isoformat() if row and row["ended_at"] else None,
        ),
        figures=figures,
        escalations=await t.desk_escalations(conn, m, [desk], day, day),
        opinions=await t.opinions(conn, m, "desk", [desk], day, day),
        notes=DESK_NOTES,
        revision=revision,
    )


async def line_daily(
    conn: db.Connection, cfg: ReportConfig, m: str, line: str, day: dt.date, *, with_revision: bool = True
) -> md.LineDaily:
    """REP-2: the phone line's daily figures, under the desk report's headings where they apply."""
    counts = await t.counts(conn, m, "line", [line], day, day)
    wait, duration = await t.call_stats(conn, m, [line], day, day)
    hours = cfg.phone_calendar(m).hours(day)
    opening = opening_hours(hours)
    sid = line_scope_id(line)
    rid = report_id("daily", sid, day)
    people = await t.unreached_people(conn, m, [line], day, day)
    figures = line_figures(counts, wait, duration, opening, people)
    revision = None
    if with_revision:
        revision = await revision_info(conn, m, rid, flatten(figures), await data_revision(conn, m, "line", line, day))
    return md.LineDaily(
        **frame(cfg, m, rid, day, day),
        scope_id=sid,
        line=line,
        date=day,
        title="日次報告書（電話対応）",
        opening=md.Opening(
            kind=hours.kind if hours.open_day else "closed",
            closed_reason=hours.closed_reason,
            intervals=_intervals(hours),
            hours=opening,
        ),
        figures=figures,
        escalations=await t.line_escalations(conn, m, [line], day, day),
        opinions=await t.opinions(conn, m, "line", [line], day, day),
        notes=LINE_NOTES,
        revision=revision,
    )


async def city_daily(
    conn: db.Connection, cfg: ReportConfig, m: str, day: dt.date, *, with_revision: bool = True
) -> md.CityDaily:
    """Every desk's daily figures in one table, the city's total and the phone line (issue 16)."""
    calendar = await cfg.calendar(conn, m)
    wards_of = await t.desk_wards(conn, cfg, m)
    rows = await conn.fetch(
        f"""SELECT scope, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'desk' AND day = $2 GROUP BY scope, figure""",
        m,
        day,
    )
    per_desk: dict[str, dict[str, int]] = defaultdict(dict)
    for r in rows:
        per_desk[r["scope"]][r["figure"]] = r["n"]
    unserved: dict[str, list[Any]] = defaultdict(list)
    for r in await t.unserved(conn, m, None, day, day):
        unserved[r["desk"]].append(r)
    for desk, rs in unserved.items():
        per_desk[desk] = t.with_unserved(per_desk[desk], rs)
    configured = [d.id for d in cfg.municipality(m).desks]
    desks = configured + sorted(set(per_desk) - set(configured))
    desk_rows: list[md.CityDesk] = []
    desk_figs: dict[str, md.CityDeskRow] = {}
    for desk in desks:
        hours = calendar.hours(day, desk)
        counts = per_desk.get(desk, {})
        ward = wards_of.get(desk) or cfg.ward_of(m, desk)
        open_day = hours.open_day or bool(counts)
        desk_rows.append(
            md.CityDesk(
                desk=desk,
                desk_name=cfg.desk_name(m, desk),
                ward=ward,
                ward_name=cfg.ward_name(m, ward) if ward else desk,
                open=open_day,
                hours_ja=_hours_ja(hours) or ("閉庁" if not counts else ""),
            )
        )
        if open_day:
            wait, service = await t.visit_stats(conn, m, [desk], day, day)
            desk_figs[desk] = city_desk_row(desk_figures(counts, wait, service, None))
    wait, service = await t.visit_stats(conn, m, None, day, day)
    line_counts = await t.counts(conn, m, "line", None, day, day)
    l_wait, l_duration = await t.call_stats(conn, m, None, day, day)
    people = await t.unreached_people(conn, m, None, day, day)
    figures = md.CityDailyFigures(
        desks=desk_figs,
        total=city_desk_row(desk_figures(counts_sum(per_desk.values()), wait, service, None)),
        line=city_line_row(line_figures(line_counts, l_wait, l_duration, None, people)),
    )
    rid = report_id("daily", "city", day)
    revision = None
    if with_revision:
        n = await conn.fetchval(
            f"""SELECT coalesce(sum(data_revision), 0)::bigint FROM "{S}".report_day
                WHERE municipality = $1 AND channel IN ('desk', 'line') AND day = $2""",
            m,
            day,
        )
        revision = await revision_info(conn, m, rid, flatten(figures), int(n or 0))
    return md.CityDaily(
        **frame(cfg, m, rid, day, day),
        scope_id="city",
        date=day,
        title="日次報告書（全市）",
        desks=desk_rows,
        line_hours_ja=_hours_ja(cfg.phone_calendar(m).hours(day)) or "受付なし",
        figures=figures,
        notes=CITY_NOTES,
        revision=revision,
    )
