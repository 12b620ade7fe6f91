"""The reports over a period: the city-wide weekly table (REP-3) and the final report (REP-4).
Weekly and contract totals are SUMs over the daily counters; percentiles come from the rows."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any

from madoguchi_shared import db, sealed
from madoguchi_shared import labels as L
from madoguchi_shared.events.report import report_id
from madoguchi_shared.figures import WEEKLY_DESK, WEEKLY_LINE, Family, Fig, label
from madoguchi_shared.wareki import to_wareki, weekday_kanji

from madoguchi_reporting.config import Contract, ReportConfig
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports import tables as t
from madoguchi_reporting.reports.common import CITY_NOTES, DESK_NOTES, LINE_NOTES, data_revision, frame, revision_info
from madoguchi_reporting.reports.compute import desk_figures, flatten, line_figures
from madoguchi_reporting.schema import SCHEMA as S

Cells = dict[dt.date, dict[str, int]]


async def _ward_day_counts(
    conn: Any, cfg: ReportConfig, m: str, start: dt.date, end: dt.date, figures: tuple[str, ...]
) -> dict[str, Cells]:
    wards = await t.desk_wards(conn, cfg, m)
    rows = await conn.fetch(
        f"""SELECT scope, day, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'desk' AND day BETWEEN $2 AND $3 AND figure = ANY($4::text[])
            GROUP BY scope, day, figure""",
        m,
        start,
        end,
        list(figures),
    )
    cells: dict[str, Cells] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        cell = cells[wards.get(r["scope"]) or r["scope"]][r["day"]]
        cell[r["figure"]] = cell.get(r["figure"], 0) + r["n"]
    if Fig.visitors in figures:  # 来庁者数 includes those who left unserved
        for r in await t.unserved(conn, m, None, start, end):
            cell = cells[wards.get(r["desk"]) or r["desk"]][r["day"]]
            cell[Fig.visitors] = cell.get(Fig.visitors, 0) + r["n"]
    return cells


def _ward_order(cfg: ReportConfig, m: str, extra: set[str]) -> list[str]:
    order = [w.id for w in cfg.municipality(m).wards]
    return order + sorted(extra - set(order))


def _sum(cells: list[dict[str, int]], figures: tuple[str, ...]) -> dict[str, int]:
    return {str(f): sum(c.get(f, 0) for c in cells) for f in figures}


def _table(days: dict[str, dict[str, int]], figures: tuple[str, ...]) -> md.DayTable:
    return md.DayTable(days=days, total=_sum(list(days.values()), figures))


async def weekly(
    conn: db.Connection, cfg: ReportConfig, m: str, week_start: dt.date, *, with_revision: bool = True
) -> md.Weekly:
    """REP-3: every desk's daily figures rolled up into one city-wide table (wards x days, totals)."""
    week_start = week_start - dt.timedelta(days=week_start.weekday())
    days = [week_start + dt.timedelta(days=i) for i in range(7)]
    end = days[-1]
    cells = await _ward_day_counts(conn, cfg, m, week_start, end, WEEKLY_DESK)
    wards = _ward_order(cfg, m, set(cells))
    ward_rows = {
        w: _table({d.isoformat(): _sum([cells[w].get(d, {})], WEEKLY_DESK) for d in days}, WEEKLY_DESK) for w in wards
    }
    day_totals = {d.isoformat(): _sum([ward_rows[w].days[d.isoformat()] for w in wards], WEEKLY_DESK) for d in days}
    line_rows = await conn.fetch(
        f"""SELECT day, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'line' AND day BETWEEN $2 AND $3 AND figure = ANY($4::text[])
            GROUP BY day, figure""",
        m,
        week_start,
        end,
        list(WEEKLY_LINE),
    )
    line_cells: Cells = defaultdict(dict)
    for r in line_rows:
        line_cells[r["day"]][r["figure"]] = r["n"]
    for cell in line_cells.values():  # as the line's daily report: what is neither answered nor unconnected yet
        ended = (Fig.answered, Fig.missed, Fig.abandoned, Fig.out_of_hours)
        cell[Fig.still_waiting] = cell.get(Fig.received, 0) - sum(cell.get(f, 0) for f in ended)
    figures = md.WeeklyFigures(
        wards=ward_rows,
        total=_table(day_totals, WEEKLY_DESK),
        line=_table({d.isoformat(): _sum([line_cells.get(d, {})], WEEKLY_LINE) for d in days}, WEEKLY_LINE),
    )
    calendar = await cfg.calendar(conn, m)
    rid = report_id("weekly", "city", week_start)
    revision = None
    if with_revision:
        revision = await revision_info(
            conn, m, rid, flatten(figures), await data_revision(conn, m, "city", "city", week_start)
        )
    return md.Weekly(
        **frame(cfg, m, rid, week_start, end),
        scope_id="city",
        week_start=week_start,
        title="週次報告書（全市）",
        days=[_week_day(d, calendar.hours(d).open_day, cfg.contract(m)) for d in days],
        wards=[md.WardName(ward=w, ward_name=cfg.ward_name(m, w)) for w in wards],
        figure_names={f: label(f) for f in WEEKLY_DESK},
        line_figure_names={f: label(f) for f in WEEKLY_LINE},
        figures=figures,
        notes=CITY_NOTES,
        revision=revision,
    )


def _week_day(d: dt.date, business_day: bool, contract: Contract | None) -> md.WeekDay:
    """A day of the weekly table: open on a business day within the contract's operations; a day before its
    first day of operations (the first weekly report's Monday to Wednesday in 2021) is 開設前, not a day on
    which nobody came."""
    closed_ja = "" if business_day else "閉庁"
    if contract is not None and d < contract.first_day:
        closed_ja = "開設前"
    elif contract is not None and d > contract.end:
        closed_ja = "契約終了"
    return md.WeekDay(
        date=d,
        label=f"{d.month}/{d.day}（{weekday_kanji(d)}）",
        wareki=to_wareki(d, weekday=True),
        open=not closed_ja,
        closed_ja=closed_ja,
    )


async def call_records(conn: Any, m: str, start: dt.date, end: dt.date) -> list[md.CallRecord]:
    """CALL-5 / REP-4: every call record of the period, without personal data."""
    rows = await conn.fetch(
        f"""SELECT call_id, line, day, received_at, within_hours, connection, missed_reason, wait_s, overflow,
                   categories, resolution, provider_category, guided_ward, duration_s, notes, opinions, callback_status
            FROM "{S}".call_record WHERE municipality = $1 AND day BETWEEN $2 AND $3
            ORDER BY received_at, call_id""",
        m,
        start,
        end,
    )
    out = []
    for no, r in enumerate(rows, start=1):
        opinions = [
            o | {"text": await sealed.reveal(m, o.get("text"))} if isinstance(o, dict) else o
            for o in (json.loads(r["opinions"]) if r["opinions"] else [])
        ]
        out.append(
            md.CallRecord(
                no=no,
                call_id=str(r["call_id"]),
                line=r["line"],
                date=r["day"],
                time=r["received_at"].astimezone(t.JST).strftime("%H:%M"),
                within_hours=r["within_hours"],
                connection=r["connection"],
                connection_ja=L.label(L.CONNECTION, r["connection"]),
                wait_s=r["wait_s"],
                categories=list(r["categories"] or []),
                categories_ja="、".join(L.label(L.CALL_CATEGORY, c) for c in (r["categories"] or [])),
                resolution=r["resolution"],
                resolution_ja=L.label(L.RESOLUTION, r["resolution"]),
                provider_category=r["provider_category"],
                guided_ward=r["guided_ward"],
                duration_s=r["duration_s"],
                notes=await sealed.reveal(m, r["notes"]),
                opinions=opinions,
                callback=r["callback_status"],
                callback_ja=L.label(L.CALLBACK_STATUS, r["callback_status"]),
            )
        )
    return out


async def final(
    conn: db.Connection,
    cfg: ReportConfig,
    m: str,
    start: dt.date,
    end: dt.date,
    *,
    with_revision: bool = True,
    with_records: bool = True,
) -> md.Final:
    """REP-4: the contract's totals per ward and month, the distributions, the line, the call records."""
    wards_of = await t.desk_wards(conn, cfg, m)
    rows = await conn.fetch(
        f"""SELECT scope, date_trunc('month', day)::date AS month, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'desk' AND day BETWEEN $2 AND $3
            GROUP BY scope, month, figure""",
        m,
        start,
        end,
    )
    by_ward: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_month: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    city: dict[str, int] = defaultdict(int)
    for r in rows:
        ward = wards_of.get(r["scope"]) or r["scope"]
        by_ward[ward][r["figure"]] += r["n"]
        city[r["figure"]] += r["n"]
        if r["figure"] == Fig.visitors:
            by_month[r["month"].strftime("%Y-%m")][ward] += r["n"]
    unserved_weeks: dict[str, int] = defaultdict(int)
    for r in await t.unserved(conn, m, None, start, end):  # 来庁者数 includes those who left unserved
        ward = wards_of.get(r["desk"]) or r["desk"]
        for target in (by_ward[ward], city):
            target[Fig.left_unserved] += r["n"]
        city[t.hour_key(r["hour"])] += r["n"]
        by_month[r["day"].strftime("%Y-%m")][ward] += r["n"]
        unserved_weeks[(r["day"] - dt.timedelta(days=r["day"].weekday())).isoformat()] += r["n"]
    wards = _ward_order(cfg, m, set(by_ward))
    wait, service = await t.visit_stats(conn, m, None, start, end)
    ward_figures = {}
    for w in wards:
        w_wait, w_service = await t.visit_stats(conn, m, [d for d, ww in wards_of.items() if ww == w], start, end)
        ward_figures[w] = desk_figures(dict(by_ward.get(w, {})), w_wait, w_service, None)
    months = sorted(by_month)
    l_wait, l_duration = await t.call_stats(conn, m, None, start, end)
    trend_rows = await conn.fetch(  # the weekly trend (PDF chart): visitors and calls per week
        f"""SELECT date_trunc('week', day)::date AS week, channel, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND day BETWEEN $2 AND $3 AND figure = ANY($4::text[])
            GROUP BY week, channel ORDER BY week""",
        m,
        start,
        end,
        [Fig.visitors, Fig.received],
    )
    trend: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # week -> [visitors, calls]
    for r in trend_rows:
        trend[r["week"].isoformat()][0 if r["channel"] == "desk" else 1] = r["n"]
    for week, n in unserved_weeks.items():
        trend[week][0] += n
    hours = sorted({int(k.split(".")[1]) for k in city if k.startswith(Family.by_hour + ".")})
    figures = md.FinalFigures(
        city=desk_figures(dict(city), wait, service, hours),
        wards=ward_figures,
        months={mo: {w: by_month[mo].get(w, 0) for w in wards} for mo in months},
        line=line_figures(
            await t.counts(conn, m, "line", None, start, end),
            l_wait,
            l_duration,
            None,
            await t.unreached_people(conn, m, None, start, end),
        ),
        weekly_trend={wk: md.TrendWeek(visitors=v, calls=c) for wk, (v, c) in sorted(trend.items())},
        call_records=int(
            await conn.fetchval(
                f'SELECT count(*) FROM "{S}".call_record WHERE municipality = $1 AND day BETWEEN $2 AND $3',
                m,
                start,
                end,
            )
            or 0
        ),
    )
    rid = report_id("final", "city", start)
    revision = await revision_info(conn, m, rid, flatten(figures), 0) if with_revision else None
    return md.Final(
        **frame(cfg, m, rid, start, end),
        scope_id="city",
        title="最終報告書",
        wards=[md.WardName(ward=w, ward_name=cfg.ward_name(m, w)) for w in wards],
        months=months,
        figures=figures,
        escalations=await t.desk_escalations(conn, m, None, start, end),
        line_escalations=await t.line_escalations(conn, m, None, start, end),
        call_records=await call_records(conn, m, start, end) if with_records else [],
        notes=DESK_NOTES + LINE_NOTES,
        revision=revision,
    )
