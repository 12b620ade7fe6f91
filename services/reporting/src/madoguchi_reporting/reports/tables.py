"""Reading the statistics tables: day counters, unserved tickets, duration statistics, the people
behind unconnected calls, escalations and opinions (with their texts revealed for the city)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from madoguchi_shared import labels as L
from madoguchi_shared import sealed
from madoguchi_shared.figures import Family, Fig, duration_stats, family

from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports.compute import NEVER_CONNECTED
from madoguchi_reporting.schema import SCHEMA as S

JST = dt.timezone(dt.timedelta(hours=9))
LINE_ESCALATION_OUTCOME = {"resolved": "折り返し完了", "failed": "折り返し不通", "cancelled": "折り返し取消"}


async def counts(
    conn: Any, m: str, channel: str, scopes: list[str] | None, start: dt.date, end: dt.date
) -> dict[str, int]:
    rows = await conn.fetch(
        f"""SELECT figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = $2 AND day BETWEEN $3 AND $4
              AND ($5::text[] IS NULL OR scope = ANY($5::text[]))
            GROUP BY figure""",
        m,
        channel,
        start,
        end,
        scopes,
    )
    return {r["figure"]: r["n"] for r in rows if r["n"]}


async def unserved(conn: Any, m: str, desks: list[str] | None, start: dt.date, end: dt.date) -> list[asyncpg.Record]:
    """People who took a ticket and left before being served (or are still waiting): tickets of the
    desk-day that no visit started with, per desk, day and hour of issue (Tokyo)."""
    return await conn.fetch(
        f"""SELECT t.desk, t.day, extract(hour FROM t.issued_at AT TIME ZONE 'Asia/Tokyo')::int AS hour,
                   count(*)::bigint AS n
            FROM "{S}".ticket t
            WHERE t.municipality = $1 AND t.day BETWEEN $2 AND $3 AND ($4::text[] IS NULL OR t.desk = ANY($4::text[]))
              AND NOT EXISTS (SELECT 1 FROM "{S}".visit v WHERE v.municipality = t.municipality AND v.day = t.day
                              AND v.desk = t.desk AND v.ticket_no = t.ticket_no)
            GROUP BY 1, 2, 3""",
        m,
        start,
        end,
        desks,
    )


def hour_key(hour: int) -> str:
    return family(Family.by_hour, f"{hour:02d}")


def with_unserved(base: dict[str, int], rows: list[Any]) -> dict[str, int]:
    """Counts with the unserved people added: `left_unserved` and their hours of arrival."""
    out = dict(base)
    for r in rows:
        out[Fig.left_unserved] = out.get(Fig.left_unserved, 0) + r["n"]
        key = hour_key(r["hour"])
        out[key] = out.get(key, 0) + r["n"]
    return out


def _stats(n: int, total_ms: int, p90_ms: int | None, max_ms: int | None) -> md.DurationStats:
    return md.DurationStats(**duration_stats(n, total_ms, p90_ms, max_ms))


async def visit_stats(
    conn: Any, m: str, desks: list[str] | None, start: dt.date, end: dt.date
) -> tuple[md.DurationStats, md.DurationStats]:
    row = await conn.fetchrow(
        f"""SELECT count(waited_ms) AS wn, coalesce(sum(waited_ms), 0)::bigint AS ws,
                   percentile_disc(0.9) WITHIN GROUP (ORDER BY waited_ms) AS wp, max(waited_ms) AS wm,
                   count(service_ms) FILTER (WHERE outcome IS NOT NULL) AS sn,
                   coalesce(sum(service_ms) FILTER (WHERE outcome IS NOT NULL), 0)::bigint AS ss,
                   percentile_disc(0.9) WITHIN GROUP (ORDER BY service_ms) FILTER (WHERE outcome IS NOT NULL) AS sp,
                   max(service_ms) FILTER (WHERE outcome IS NOT NULL) AS sm
            FROM "{S}".visit
            WHERE municipality = $1 AND day BETWEEN $2 AND $3 AND ($4::text[] IS NULL OR desk = ANY($4::text[]))""",
        m,
        start,
        end,
        desks,
    )
    return _stats(row["wn"], row["ws"], row["wp"], row["wm"]), _stats(row["sn"], row["ss"], row["sp"], row["sm"])


async def call_stats(
    conn: Any, m: str, lines: list[str] | None, start: dt.date, end: dt.date
) -> tuple[md.DurationStats, md.DurationStats]:
    row = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE connection = 'answered') AS wn,
                   coalesce(sum(wait_s) FILTER (WHERE connection = 'answered'), 0)::bigint AS ws,
                   percentile_disc(0.9) WITHIN GROUP (ORDER BY wait_s) FILTER (WHERE connection = 'answered') AS wp,
                   max(wait_s) FILTER (WHERE connection = 'answered') AS wm,
                   count(*) FILTER (WHERE resolution IS NOT NULL) AS dn,
                   coalesce(sum(duration_s) FILTER (WHERE resolution IS NOT NULL), 0)::bigint AS ds,
                   percentile_disc(0.9) WITHIN GROUP (ORDER BY duration_s) FILTER (WHERE resolution IS NOT NULL) AS dp,
                   max(duration_s) FILTER (WHERE resolution IS NOT NULL) AS dm
            FROM "{S}".call_record
            WHERE municipality = $1 AND day BETWEEN $2 AND $3 AND ($4::text[] IS NULL OR line = ANY($4::text[]))""",
        m,
        start,
        end,
        lines,
    )

    def ms(v: int | None) -> int | None:
        return None if v is None else v * 1000

    return (
        _stats(row["wn"], row["ws"] * 1000, ms(row["wp"]), ms(row["wm"])),
        _stats(row["dn"], row["ds"] * 1000, ms(row["dp"]), ms(row["dm"])),
    )


def caller_roots(links: dict[str, str | None]) -> dict[str, str]:
    """reference -> the reference of the caller's first call, following repeat links (a link to an
    unknown reference ends the chain there; a loop is cut)."""
    out: dict[str, str] = {}
    for ref in links:
        seen = [ref]
        cur = ref
        while (nxt := links.get(cur)) and nxt not in seen:
            seen.append(nxt)
            cur = nxt
        out[ref] = cur
    return out


async def unreached_people(conn: Any, m: str, lines: list[str] | None, start: dt.date, end: dt.date) -> int:
    """The callers who did not get through in the period (つながらなかった方): calls linked as repeats (by
    the reference the caller was given) are one person (issue 16), and a person whose call was answered in
    the same period did get through: not counted, however many of their calls rang out before (a city reads
    「つながらなかった方」 as those the line never reached; the calls that rang out are つながらなかった呼)."""
    rows = await conn.fetch(
        f"""SELECT reference, repeat_of, connection FROM "{S}".call_record
            WHERE municipality = $1 AND day BETWEEN $2 AND $3
              AND ($4::text[] IS NULL OR line = ANY($4::text[])) AND connection = ANY($5::text[])""",
        m,
        start,
        end,
        lines,
        [*NEVER_CONNECTED, Fig.answered.value],
    )
    links: dict[str, str | None] = {r["reference"]: r["repeat_of"] for r in rows if r["reference"]}
    missing = {r["repeat_of"] for r in rows if r["repeat_of"]} - set(links)
    for _ in range(50):  # earlier calls of a chain, whatever their day or outcome
        if not missing:
            break
        found = await conn.fetch(
            f"""SELECT reference, repeat_of FROM "{S}".call_record
                WHERE municipality = $1 AND reference = ANY($2::text[])""",
            m,
            list(missing),
        )
        for r in found:
            links[r["reference"]] = r["repeat_of"]
        missing = {r["repeat_of"] for r in found if r["repeat_of"]} - set(links)  # an unknown reference ends its chain
    roots = caller_roots(links)
    unreached = [r for r in rows if r["connection"] != Fig.answered]
    reached = {roots[r["reference"]] for r in rows if r["connection"] == Fig.answered and r["reference"]}
    people = {roots[r["reference"]] for r in unreached if r["reference"]} - reached
    return len(people) + sum(1 for r in unreached if not r["reference"])


async def _note_rows(
    conn: Any, m: str, channel: str, scopes: list[str] | None, start: dt.date, end: dt.date, kind: str
) -> list[Any]:
    return await conn.fetch(
        f"""SELECT scope, day, ref, at, category, step, text, status, detail FROM "{S}".note
            WHERE municipality = $1 AND channel = $2 AND kind = $3 AND day BETWEEN $4 AND $5
              AND ($6::text[] IS NULL OR scope = ANY($6::text[]))
            ORDER BY day, at, scope, ref""",
        m,
        channel,
        kind,
        start,
        end,
        scopes,
    )


async def _entry(m: str, r: Any) -> dict[str, Any]:
    return {
        "scope": r["scope"],
        "date": r["day"].isoformat(),
        "time": r["at"].astimezone(JST).strftime("%H:%M"),
        "ref": r["ref"],
        "category": r["category"],
        "text": await sealed.reveal(m, r["text"]),  # 削除済み once erased
    }


async def desk_escalations(
    conn: Any, m: str, scopes: list[str] | None, start: dt.date, end: dt.date
) -> list[md.DeskEscalation]:
    out = []
    for r in await _note_rows(conn, m, "desk", scopes, start, end, "escalation"):
        out.append(
            md.DeskEscalation(
                **await _entry(m, r),
                category_ja=L.label(L.ESCALATION_CATEGORY, r["category"]),
                status=r["status"],
                status_ja=L.label(L.ESCALATION_STATUS, r["status"]),
                outcome=await sealed.reveal(m, r["detail"]),
            )
        )
    return out


async def line_escalations(
    conn: Any, m: str, scopes: list[str] | None, start: dt.date, end: dt.date
) -> list[md.LineEscalation]:
    """A phone escalation followed through its callback: the city's answer and the outcome."""
    out = []
    for r in await _note_rows(conn, m, "line", scopes, start, end, "escalation"):
        answer = await sealed.reveal(m, r["detail"]) if r["detail"] else None
        done = LINE_ESCALATION_OUTCOME.get(r["status"] or "")
        parts = [f"市の回答：{answer}"] if answer else []
        if done:
            parts.append(done + (f"（{L.label(L.RESOLUTION, r['step'])}）" if r["step"] else ""))
        out.append(
            md.LineEscalation(
                **await _entry(m, r),
                category_ja="、".join(L.label(L.CALL_CATEGORY, c) for c in (r["category"] or "").split(",") if c),
                status=r["status"],
                status_ja=L.label(L.ESCALATION_STATUS, r["status"]),
                city_answer=answer,
                callback_resolution=r["step"],
                outcome="／".join(parts),
            )
        )
    return out


async def opinions(
    conn: Any, m: str, channel: str, scopes: list[str] | None, start: dt.date, end: dt.date
) -> list[md.Opinion]:
    out = []
    for r in await _note_rows(conn, m, channel, scopes, start, end, "opinion"):
        out.append(
            md.Opinion(
                **await _entry(m, r),
                kind_ja=L.label(L.OPINION_KIND, r["category"]),
                step=r["step"],
                step_ja=L.label(L.PROCEDURE_STEP, r["step"]),
            )
        )
    return out


async def desk_wards(conn: Any, cfg: ReportConfig, m: str) -> dict[str, str]:
    """desk -> ward: from the events (desk_day), completed by the configuration."""
    out = {d.id: d.ward for d in cfg.municipality(m).desks}
    for r in await conn.fetch(f'SELECT DISTINCT desk, ward FROM "{S}".desk_day WHERE municipality = $1', m):
        out[r["desk"]] = r["ward"]
    return out


async def known_lines(conn: Any, m: str) -> list[str]:
    rows = await conn.fetch(
        f"""SELECT DISTINCT scope FROM "{S}".day_count WHERE municipality = $1 AND channel = 'line'
            ORDER BY scope""",
        m,
    )
    return [r["scope"] for r in rows]
