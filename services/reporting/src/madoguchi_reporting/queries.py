"""Reports as JSON, built from the statistics tables (REP-1 … REP-4).

Every report is a dict with the same frame:

    {"report_id", "kind", "scope", "scope_id", "municipality", "period": {...both calendars...},
     "title", "figures": {...numbers, nested...}, lists (escalations, opinions, call records),
     "revision": {...data revision, delivered versions, what changed since the last one...}}

`flatten(report)` turns ``figures`` into ``{"by_hour.09": 7, "wait.p90_s": 412.5, ...}``: the figure
keys the verifier (recount.py) checks and a revision lists as changed. Weekly and contract totals
are SUMs over the daily counters; percentiles come from the per-visit and per-call rows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from typing import Any, get_args

import asyncpg

from madoguchi_shared import db
from madoguchi_shared.events import calls as cl
from madoguchi_shared.events import desk as dk
from madoguchi_shared.events.report import line_scope_id, report_id
from madoguchi_shared.wareki import heading_date, heading_period, to_wareki, weekday_kanji

from madoguchi_shared import labels as L
from madoguchi_shared.figures import LABELS, duration_stats
from madoguchi_shared.figures import share as ratio
from madoguchi_shared import sealed
from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.schema import SCHEMA

S = SCHEMA

UNKNOWN = "unknown"  # gender / age band of a person who left before being served (不明)
GENDERS = get_args(dk.Gender)
AGE_BANDS = get_args(dk.AgeBand)
PURPOSES = get_args(dk.Purpose)
OUTCOMES = get_args(dk.Outcome)
REASONS = get_args(dk.NotCompletedReason)
PAYMENT = get_args(dk.PaymentServiceCategory)
OPINION_KINDS = get_args(dk.OpinionKind)
STEPS = get_args(dk.ProcedureStep)
ESC_CATEGORIES = get_args(dk.EscalationCategory)
INCIDENTS = get_args(dk.IncidentKind)
RESOLUTIONS = get_args(cl.Resolution)
PROVIDERS = get_args(cl.ProviderCategory)

# The figures of the weekly city-wide table (REP-3), per ward and day.
WEEKLY_DESK = (
    "visitors",
    "support_needed",
    "support_given",
    "completed",
    "not_completed",
    "no_shows",
    "escalations",
    "opinions",
)
WEEKLY_LINE = (
    "received",
    "answered",
    "missed",
    "abandoned",
    "out_of_hours",
    "escalations",
    "callbacks_opened",
    "callbacks_done",
    "opinions",
)


# 注記: what each figure of a report means (printed with every report).
DESK_NOTES = [
    (
        "来庁者数",
        "窓口に来庁した人数。対応した方に、受付番号札を受け取り対応前に帰られた方を加えた人数（仕様書4(5)オ）。",
    ),
    (
        "支援が必要な方",
        "来庁者のうち、マイキーID設定・マイナポイント申込みの支援が必要と判断した方の人数。割合は来庁者数に対する割合。",
    ),
    ("支援を実施した方", "来庁者のうち、支援を実施した方の人数。割合は来庁者数に対する割合。"),
    ("支援実施率（実施／必要）", "支援を実施した方の人数を、支援が必要な方の人数で割った値（参考値）。"),
    ("性別・年代別", "対応した方は記録した属性。対応前に帰られた方は「不明」。"),
    ("時間帯別", "受付番号札の発行時刻（番号札なしで対応した方は対応開始時刻）の時間帯。"),
    ("待ち時間・対応時間", "待ち時間は受付から対応開始まで、対応時間は対応開始から終了まで。単位は分（小数第1位）。"),
    ("呼出し時不在", "番号を呼び出したときに不在だった回数（再呼出しで対応した方を含む）。"),
    (
        "対応前に帰られた方",
        "受付番号札を受け取り、対応を始める前に帰られた方（集計時点で待っている方を含む）。来庁者数に含む。",
    ),
]
LINE_NOTES = [
    ("入電数", "受付時間内・時間外を含む全ての着信。"),
    (
        "つながらなかった呼",
        "不応答・放棄呼・時間外入電の合計。人数は、再入電時に案内した受付番号で同じ方と分かった着信を1人として数えた値。",
    ),
    (
        "混雑時の案内・時間外の案内",
        "混雑時に待つ・折り返し・かけ直しを案内した件数と、受付時間外に案内した件数を分けて集計。",
    ),
    ("エスカレーション", "市（委託者）への確認を要した件。折り返しの結果と市の回答を含む。"),
    ("応答待ち時間・通話時間", "単位は分（小数第1位）。"),
]


CITY_NOTES = [
    DESK_NOTES[0],
    DESK_NOTES[1],
    DESK_NOTES[2],
    DESK_NOTES[6],
    ("閉庁", "その日に開設していない窓口（来庁者がいなかった日とは区別）。"),
]


# --- arithmetic shared by every report: madoguchi_shared.figures (share, mean_tenths, duration_stats) -----


def flatten(report_or_figures: dict[str, Any]) -> dict[str, int | float]:
    figures = report_or_figures.get("figures", report_or_figures)
    out: dict[str, int | float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, bool):
            out[prefix] = int(value)
        elif isinstance(value, int | float):
            out[prefix] = value
        # None (a ratio of nothing) and lists are not figures

    walk("", figures)
    return out


def diff_figures(old: dict[str, int | float], new: dict[str, int | float]) -> list[dict[str, Any]]:
    """Figures that differ (a missing figure counts as absent, a zero as zero)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if (a or 0) != (b or 0):
            out.append({"key": key, "old": a, "new": b})
    return out


def _zero_fill(codes, counts: dict[str, int], prefix: str) -> dict[str, int]:
    out = {c: counts.get(f"{prefix}.{c}", 0) for c in codes}
    for k, n in counts.items():  # codes outside the known list (configuration, new versions)
        if k.startswith(prefix + ".") and k[len(prefix) + 1 :] not in out and "." not in k[len(prefix) + 1 :]:
            out[k[len(prefix) + 1 :]] = n
    return out


def _present(counts: dict[str, int], prefix: str) -> dict[str, int]:
    p = prefix + "."
    return {k[len(p) :]: n for k, n in sorted(counts.items()) if k.startswith(p) and n}


def _hours(counts: dict[str, int], opening: list[int]) -> dict[str, int]:
    hours = set(opening) | {int(k.split(".")[1]) for k in counts if k.startswith("by_hour.")}
    return {f"{h:02d}": counts.get(f"by_hour.{h:02d}", 0) for h in sorted(hours)}


def opening_hours(hours) -> list[int]:
    """Every clock hour the desk (or line) is open in: 8:45–17:15 -> 8..17; to 19:00 -> 8..18."""
    out: set[int] = set()
    for start, end in hours.intervals:
        h = start.hour
        last = (end - dt.timedelta(microseconds=1)).hour
        out.update(range(h, last + 1))
    return sorted(out)


def desk_figures(c: dict[str, int], wait: dict, service: dict, opening: list[int] | None) -> dict[str, Any]:
    """The desk figures (REP-1) by the specification's definitions (仕様書 4(5)オ): 来庁者数 is every
    person who came, the visits served and those who took a ticket and left before being served
    (`left_unserved`, gender and age band 不明); the shares of people needing and given support are
    of 来庁者数, given / needed kept beside them (`support_given_of_needed`)."""
    served = c.get("visitors", 0)  # the counter counts served visits; the unserved are added by the query
    unserved = c.get("left_unserved", 0)
    visitors = served + unserved
    needed, given = c.get("support_needed", 0), c.get("support_given", 0)
    completed, not_completed = c.get("completed", 0), c.get("not_completed", 0)
    figures: dict[str, Any] = {
        "visitors": visitors,
        "served": served,
        "left_unserved": unserved,
        "tickets_issued": c.get("tickets_issued", 0),
        "no_shows": c.get("no_shows", 0),
        "support_needed": needed,
        "support_given": given,
        "support_needed_ratio": ratio(needed, visitors),
        "support_given_ratio": ratio(given, visitors),
        "support_given_of_needed": ratio(given, needed),
        "completed": completed,
        "not_completed": not_completed,
        "in_service": served - completed - not_completed,
        "details_recorded": c.get("details_n", 0),
    }
    if opening is not None:
        figures["by_hour"] = _hours(c, opening)
    figures.update(
        {
            "by_gender": {**_zero_fill(GENDERS, c, "by_gender"), UNKNOWN: unserved},
            "by_age_band": {**_zero_fill(AGE_BANDS, c, "by_age_band"), UNKNOWN: unserved},
            "by_purpose": _zero_fill(PURPOSES, c, "by_purpose"),
            "outcomes_by_purpose": {
                p: {o: c.get(f"outcome_by_purpose.{p}.{o}", 0) for o in OUTCOMES} for p in PURPOSES
            },
            "not_completed_reasons": _zero_fill(REASONS, c, "not_completed_reason"),
            "payment_services": _zero_fill(PAYMENT, c, "payment_service"),
            "wait": wait,
            "service": service,
            "escalations": c.get("escalations", 0),
            "escalations_to_city": c.get("escalations_to_city", 0),
            "escalations_by_category": _zero_fill(ESC_CATEGORIES, c, "escalations_by_category"),
            "opinions": c.get("opinions", 0),
            "opinions_by_kind": _zero_fill(OPINION_KINDS, c, "opinions_by_kind"),
            "difficulties_by_step": _zero_fill(STEPS, c, "difficulties_by_step"),
            "pin_failures": c.get("pin_failures", 0),
            "pin_locks": c.get("pin_locks", 0),
            "pin_lock_warnings": c.get("pin_lock_warnings", 0),
            "cards_handed": c.get("cards_handed", 0),
            "card_incidents": c.get("card_incidents", 0),
            "incidents": _zero_fill(INCIDENTS, c, "incidents"),
            "disinfections": c.get("disinfections", 0),
            "disinfection_misses": c.get("disinfection_misses", 0),
            "disinfection_compliance": ratio(served - c.get("disinfection_misses", 0), served),
            "masks_checked": c.get("masks_checked", 0),
            "masks_missing": c.get("masks_missing", 0),
            "staffing_breaches": c.get("staffing_breaches", 0),
            "staffing_breach_s": (c.get("staffing_breach_ms", 0) + 500) // 1000,
            "short_absences": c.get("short_absences", 0),
            "capacity_alerts": c.get("capacity_alerts", 0),
            "recalls": c.get("recalls", 0),
            "day_stops": c.get("day_stops", 0),
            "visit_corrections": c.get("visit_corrections", 0),
        }
    )
    return figures


def line_figures(
    c: dict[str, int], wait: dict, duration: dict, opening: list[int] | None, people: int | None = None
) -> dict[str, Any]:
    """The line figures (REP-2). `people`: the callers behind the unconnected calls, a repeat call
    linked by its reference counted with the caller's earlier call (None: not counted)."""
    received = c.get("received", 0)
    never = c.get("missed", 0) + c.get("abandoned", 0) + c.get("out_of_hours", 0)
    figures: dict[str, Any] = {
        "received": received,
        "received_in_hours": c.get("received_in_hours", 0),
        "answered": c.get("answered", 0),
        "missed": c.get("missed", 0),
        "missed_callback_chosen": c.get("missed_callback_chosen", 0),
        "abandoned": c.get("abandoned", 0),
        "out_of_hours": c.get("out_of_hours", 0),
        "never_connected": never,
        "never_connected_people": never if people is None else people,
        "never_connected_share": ratio(never, received),
        "answer_rate": ratio(c.get("answered", 0), received),
        "overflow_offered": c.get("overflow_offered", 0),
        "after_hours_guided": c.get("after_hours_guided", 0),
        "offer_choices": {k: c.get(f"offer_choices.{k}", 0) for k in get_args(cl.OverflowOption)},
        "repeat_calls": c.get("repeat_calls", 0),
        "closed": c.get("closed", 0),
    }
    if opening is not None:
        figures["by_hour"] = _hours(c, opening)
    figures.update(
        {
            "by_category": _present(c, "by_category"),
            "by_resolution": _zero_fill(RESOLUTIONS, c, "by_resolution"),
            "by_provider": _zero_fill(PROVIDERS, c, "by_provider"),
            "guided_ward": _present(c, "guided_ward"),
            "escalations": c.get("escalations", 0),
            "opinions": c.get("opinions", 0),
            "opinions_by_kind": _zero_fill(OPINION_KINDS, c, "opinions_by_kind"),
            "difficulties_by_step": _zero_fill(STEPS, c, "difficulties_by_step"),
            "answer_wait": wait,
            "duration": duration,
            "callbacks": {
                k: c.get(f"callbacks_{k}", 0)
                for k in ("opened", "done", "failed", "cancelled", "overdue", "to_city", "city_answered")
            },
            "capacity_alerts": c.get("capacity_alerts", 0),
            "staffing_breaches": c.get("staffing_breaches", 0),
            "staffing_gap_s": c.get("staffing_gap_s_sum", 0),
        }
    )
    return figures


# --- reading the tables -------------------------------------------------------------------------


async def _counts(conn, m: str, channel: str, scopes: list[str] | None, start: dt.date, end: dt.date) -> dict[str, int]:
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


async def _unserved(conn, m: str, desks: list[str] | None, start: dt.date, end: dt.date) -> list[asyncpg.Record]:
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


def _with_unserved(counts: dict[str, int], rows) -> dict[str, int]:
    """Counts with the unserved people added: `left_unserved` and their hours of arrival."""
    out = dict(counts)
    for r in rows:
        out["left_unserved"] = out.get("left_unserved", 0) + r["n"]
        key = f"by_hour.{r['hour']:02d}"
        out[key] = out.get(key, 0) + r["n"]
    return out


async def _visit_stats(conn, m: str, desks: list[str] | None, start: dt.date, end: dt.date) -> tuple[dict, dict]:
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
    return (
        duration_stats(row["wn"], row["ws"], row["wp"], row["wm"]),
        duration_stats(row["sn"], row["ss"], row["sp"], row["sm"]),
    )


async def _call_stats(conn, m: str, lines: list[str] | None, start: dt.date, end: dt.date) -> tuple[dict, dict]:
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

    def ms(v):
        return None if v is None else v * 1000

    return (
        duration_stats(row["wn"], row["ws"] * 1000, ms(row["wp"]), ms(row["wm"])),
        duration_stats(row["dn"], row["ds"] * 1000, ms(row["dp"]), ms(row["dm"])),
    )


NEVER_CONNECTED = ("missed", "abandoned", "out_of_hours")
LINE_ESCALATION_OUTCOME = {"resolved": "折り返し完了", "failed": "折り返し不通", "cancelled": "折り返し取消"}


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


async def _unreached_people(conn, m: str, lines: list[str] | None, start: dt.date, end: dt.date) -> int:
    """The callers behind the period's unconnected calls: calls linked as repeats (by the reference
    the caller was given) count as one person (issue 16)."""
    rows = await conn.fetch(
        f"""SELECT reference, repeat_of FROM "{S}".call_record WHERE municipality = $1 AND day BETWEEN $2 AND $3
              AND ($4::text[] IS NULL OR line = ANY($4::text[])) AND connection = ANY($5::text[])""",
        m,
        start,
        end,
        lines,
        list(NEVER_CONNECTED),
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
    return len({roots[r["reference"]] for r in rows if r["reference"]}) + sum(1 for r in rows if not r["reference"])


async def _notes(
    conn, m: str, channel: str, scopes: list[str] | None, start: dt.date, end: dt.date, kind: str
) -> list[dict]:
    rows = await conn.fetch(
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
    out = []
    for r in rows:
        at = r["at"].astimezone(dt.timezone(dt.timedelta(hours=9)))
        item = {
            "scope": r["scope"],
            "date": r["day"].isoformat(),
            "time": at.strftime("%H:%M"),
            "ref": r["ref"],
            "category": r["category"],
            "text": await sealed.reveal(m, r["text"]),
        }  # 削除済み once erased
        if kind == "escalation" and channel == "line":
            # a phone escalation followed through its callback: the city's answer and the outcome
            answer = await sealed.reveal(m, r["detail"]) if r["detail"] else None
            done = LINE_ESCALATION_OUTCOME.get(r["status"] or "")
            parts = [f"市の回答：{answer}"] if answer else []
            if done:
                parts.append(done + (f"（{L.label(L.RESOLUTION, r['step'])}）" if r["step"] else ""))
            item.update(
                category_ja="、".join(L.label(L.CALL_CATEGORY, c) for c in (r["category"] or "").split(",") if c),
                status=r["status"],
                status_ja=L.label(L.ESCALATION_STATUS, r["status"]),
                city_answer=answer,
                callback_resolution=r["step"],
                outcome="／".join(parts),
            )
        elif kind == "escalation":
            item.update(
                category_ja=L.label(L.ESCALATION_CATEGORY, r["category"]),
                status=r["status"],
                status_ja=L.label(L.ESCALATION_STATUS, r["status"]),
                outcome=await sealed.reveal(m, r["detail"]),
            )
        else:
            item.update(
                kind_ja=L.label(L.OPINION_KIND, r["category"]),
                step=r["step"],
                step_ja=L.label(L.PROCEDURE_STEP, r["step"]),
            )
        out.append(item)
    return out


async def desk_wards(conn, cfg: ReportConfig, m: str) -> dict[str, str]:
    """desk -> ward: from the events (desk_day), completed by the configuration."""
    out = {d.id: d.ward for d in cfg.municipality(m).desks}
    for r in await conn.fetch(f'SELECT DISTINCT desk, ward FROM "{S}".desk_day WHERE municipality = $1', m):
        out[r["desk"]] = r["ward"]
    return out


async def known_lines(conn, m: str) -> list[str]:
    rows = await conn.fetch(
        f"""SELECT DISTINCT scope FROM "{S}".day_count WHERE municipality = $1 AND channel = 'line'
                                ORDER BY scope""",
        m,
    )
    return [r["scope"] for r in rows]


# --- revisions: the delivered versions and what changed since -----------------------------------


async def revision_info(
    conn, m: str, rid: str, figures_flat: dict[str, int | float], data_revision: int
) -> dict[str, Any]:
    rows = await conn.fetch(
        f"""SELECT revision, submitted_at, submitted_by, sha256, figures FROM "{S}".report_submission
            WHERE municipality = $1 AND report_id = $2 ORDER BY revision""",
        m,
        rid,
    )
    info: dict[str, Any] = {
        "data_revision": data_revision,
        "submitted": [
            {
                "revision": r["revision"],
                "submitted_at": r["submitted_at"].isoformat(),
                "submitted_by": r["submitted_by"],
                "sha256": r["sha256"],
            }
            for r in rows
        ],
    }
    if not rows:
        info.update(status="draft", revision=None, label_ja="未提出")
        return info
    last = rows[-1]
    changes = diff_figures(json.loads(last["figures"]), figures_flat)
    if changes:
        rev = last["revision"] + 1
        info.update(
            status="revised",
            revision=rev,
            based_on=last["revision"],
            changes=changes,
            label_ja=f"第{rev}版（第{last['revision']}版提出後の訂正あり・未提出）",
        )
    else:
        info.update(
            status="submitted", revision=last["revision"], changes=[], label_ja=f"第{last['revision']}版（提出済）"
        )
    return info


async def _data_revision(conn, m: str, channel: str, scope: str, day: dt.date) -> int:
    return (
        await conn.fetchval(
            f"""SELECT data_revision FROM "{S}".report_day WHERE municipality = $1 AND channel = $2 AND scope = $3 AND day = $4""",
            m,
            channel,
            scope,
            day,
        )
        or 0
    )


def _period(start: dt.date, end: dt.date) -> dict[str, Any]:
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "start_wareki": to_wareki(start, weekday=True),
        "end_wareki": to_wareki(end, weekday=True),
        "heading": heading_date(start) if start == end else heading_period(start, end),
    }


# --- the reports ---------------------------------------------------------------------------------


async def desk_daily(
    conn: db.Connection, cfg: ReportConfig, m: str, desk: str, day: dt.date, *, with_revision: bool = True
) -> dict[str, Any]:
    """REP-1: one desk's daily report."""
    counts = _with_unserved(
        await _counts(conn, m, "desk", [desk], day, day), await _unserved(conn, m, [desk], day, day)
    )
    wait, service = await _visit_stats(conn, m, [desk], day, day)
    calendar = await cfg.calendar(conn, m)
    hours = calendar.hours(day, desk)
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
    report: dict[str, Any] = {
        "report_id": rid,
        "kind": "daily",
        "scope": "desk",
        "scope_id": desk,
        "municipality": m,
        "municipality_name": cfg.municipality(m).name_ja,
        "ward": ward,
        "ward_name": cfg.ward_name(m, ward) if ward else None,
        "desk": desk,
        "desk_name": cfg.desk_name(m, desk),
        "date": day.isoformat(),
        "period": _period(day, day),
        "title": f"日次報告書（窓口）　{cfg.ward_name(m, ward) if ward else desk}",
        "opening": {
            "kind": hours.kind if hours.open_day else "closed",
            "closed_reason": hours.closed_reason,
            "intervals": [[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in hours.intervals],
            "hours": opening,
            "day_started_at": row["started_at"].isoformat() if row and row["started_at"] else None,
            "day_ended_at": row["ended_at"].isoformat() if row and row["ended_at"] else None,
        },
        "figures": desk_figures(counts, wait, service, opening),
        "escalations": await _notes(conn, m, "desk", [desk], day, day, "escalation"),
        "opinions": await _notes(conn, m, "desk", [desk], day, day, "opinion"),
        "notes": [list(n) for n in DESK_NOTES],
        "signature": signature(cfg, m),
    }
    if with_revision:
        report["revision"] = await revision_info(
            conn, m, rid, flatten(report), await _data_revision(conn, m, "desk", desk, day)
        )
    return report


async def line_daily(
    conn: db.Connection, cfg: ReportConfig, m: str, line: str, day: dt.date, *, with_revision: bool = True
) -> dict[str, Any]:
    """REP-2: the phone line's daily figures, under the desk report's headings where they apply."""
    counts = await _counts(conn, m, "line", [line], day, day)
    wait, duration = await _call_stats(conn, m, [line], day, day)
    hours = cfg.phone_calendar(m).hours(day)
    opening = opening_hours(hours)
    sid = line_scope_id(line)
    rid = report_id("daily", sid, day)
    report: dict[str, Any] = {
        "report_id": rid,
        "kind": "daily",
        "scope": "line",
        "scope_id": sid,
        "line": line,
        "municipality": m,
        "municipality_name": cfg.municipality(m).name_ja,
        "date": day.isoformat(),
        "period": _period(day, day),
        "title": "日次報告書（電話対応）",
        "opening": {
            "kind": hours.kind if hours.open_day else "closed",
            "closed_reason": hours.closed_reason,
            "intervals": [[s.strftime("%H:%M"), e.strftime("%H:%M")] for s, e in hours.intervals],
            "hours": opening,
        },
        "figures": line_figures(counts, wait, duration, opening, await _unreached_people(conn, m, [line], day, day)),
        "escalations": await _notes(conn, m, "line", [line], day, day, "escalation"),
        "opinions": await _notes(conn, m, "line", [line], day, day, "opinion"),
        "notes": [list(n) for n in LINE_NOTES],
        "signature": signature(cfg, m),
    }
    if with_revision:
        report["revision"] = await revision_info(
            conn, m, rid, flatten(report), await _data_revision(conn, m, "line", line, day)
        )
    return report


# The per-desk columns of the city-wide daily report (issue 16): one row per desk, the phone line below.
CITY_DAILY_DESK = (
    "visitors",
    "support_needed",
    "support_needed_ratio",
    "support_given",
    "support_given_ratio",
    "completed",
    "not_completed",
    "no_shows",
    "escalations",
    "opinions",
    "wait.mean_s",
    "service.mean_s",
)
CITY_DAILY_LINE = (
    "received",
    "answered",
    "answer_rate",
    "never_connected",
    "never_connected_people",
    "out_of_hours",
    "overflow_offered",
    "after_hours_guided",
    "closed",
    "escalations",
    "callbacks.opened",
    "callbacks.done",
    "opinions",
)


def _pick(figures: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        value: Any = figures
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        head, _, tail = key.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[key] = value
    return out


def signature(cfg: ReportConfig, m: str) -> dict[str, Any]:
    """The report's signature block: contractor (受託者), submission date (提出日, set when delivered)
    and the city's approval boxes (承認欄), from the municipality configuration."""
    sig = cfg.municipality(m).report
    return {"contractor": sig.contractor_ja, "approvals": list(sig.approvals), "submitted_on": None}


async def city_daily(
    conn: db.Connection, cfg: ReportConfig, m: str, day: dt.date, *, with_revision: bool = True
) -> dict[str, Any]:
    """Every desk's daily figures in one table, the city's total and the phone line (issue 16)."""
    calendar = await cfg.calendar(conn, m)
    wards_of = await desk_wards(conn, cfg, m)
    rows = await conn.fetch(
        f"""SELECT scope, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'desk' AND day = $2 GROUP BY scope, figure""",
        m,
        day,
    )
    per_desk: dict[str, dict[str, int]] = defaultdict(dict)
    for r in rows:
        per_desk[r["scope"]][r["figure"]] = r["n"]
    unserved: dict[str, list] = defaultdict(list)
    for r in await _unserved(conn, m, None, day, day):
        unserved[r["desk"]].append(r)
    for desk, rs in unserved.items():
        per_desk[desk] = _with_unserved(per_desk[desk], rs)
    configured = [d.id for d in cfg.municipality(m).desks]
    desks = configured + sorted(set(per_desk) - set(configured))
    desk_rows: list[dict[str, Any]] = []
    desk_figs: dict[str, Any] = {}
    for desk in desks:
        hours = calendar.hours(day, desk)
        counts = per_desk.get(desk, {})
        ward = wards_of.get(desk) or cfg.ward_of(m, desk)
        open_day = hours.open_day or bool(counts)
        desk_rows.append(
            {
                "desk": desk,
                "desk_name": cfg.desk_name(m, desk),
                "ward": ward,
                "ward_name": cfg.ward_name(m, ward) if ward else desk,
                "open": open_day,
                "hours_ja": "、".join(f"{s.strftime('%H:%M')}～{e.strftime('%H:%M')}" for s, e in hours.intervals)
                or ("閉庁" if not counts else ""),
            }
        )
        if open_day:
            wait, service = await _visit_stats(conn, m, [desk], day, day)
            desk_figs[desk] = _pick(desk_figures(counts, wait, service, None), CITY_DAILY_DESK)
    total_counts = _counts_sum(per_desk.values())
    wait, service = await _visit_stats(conn, m, None, day, day)
    line_counts = await _counts(conn, m, "line", None, day, day)
    l_wait, l_duration = await _call_stats(conn, m, None, day, day)
    phone = cfg.phone_calendar(m).hours(day)
    rid = report_id("daily", "city", day)
    report: dict[str, Any] = {
        "report_id": rid,
        "kind": "daily",
        "scope": "city",
        "scope_id": "city",
        "municipality": m,
        "municipality_name": cfg.municipality(m).name_ja,
        "date": day.isoformat(),
        "period": _period(day, day),
        "title": "日次報告書（全市）",
        "desks": desk_rows,
        "line_hours_ja": "、".join(f"{s.strftime('%H:%M')}～{e.strftime('%H:%M')}" for s, e in phone.intervals)
        or "受付なし",
        "figures": {
            "desks": desk_figs,
            "total": _pick(desk_figures(total_counts, wait, service, None), CITY_DAILY_DESK),
            "line": _pick(
                line_figures(line_counts, l_wait, l_duration, None, await _unreached_people(conn, m, None, day, day)),
                CITY_DAILY_LINE,
            ),
        },
        "notes": [list(n) for n in CITY_NOTES],
        "signature": signature(cfg, m),
    }
    if with_revision:
        revision = await conn.fetchval(
            f"""SELECT coalesce(sum(data_revision), 0)::bigint FROM "{S}".report_day
                WHERE municipality = $1 AND channel IN ('desk', 'line') AND day = $2""",
            m,
            day,
        )
        report["revision"] = await revision_info(conn, m, rid, flatten(report), int(revision or 0))
    return report


def _counts_sum(parts) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for part in parts:
        for k, n in part.items():
            out[k] += n
    return dict(out)


async def _ward_day_counts(conn, cfg, m: str, start: dt.date, end: dt.date, figures: tuple[str, ...]):
    wards = await desk_wards(conn, cfg, m)
    rows = await conn.fetch(
        f"""SELECT scope, day, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'desk' AND day BETWEEN $2 AND $3 AND figure = ANY($4::text[])
            GROUP BY scope, day, figure""",
        m,
        start,
        end,
        list(figures),
    )
    cells: dict[str, dict[dt.date, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        ward = wards.get(r["scope"], r["scope"])
        cell = cells[ward][r["day"]]
        cell[r["figure"]] = cell.get(r["figure"], 0) + r["n"]
    if "visitors" in figures:  # 来庁者数 includes those who left unserved
        for r in await _unserved(conn, m, None, start, end):
            cell = cells[wards.get(r["desk"], r["desk"])][r["day"]]
            cell["visitors"] = cell.get("visitors", 0) + r["n"]
    return cells


def _ward_order(cfg: ReportConfig, m: str, extra: set[str]) -> list[str]:
    order = [w.id for w in cfg.municipality(m).wards]
    return order + sorted(extra - set(order))


def _sum(cells: list[dict[str, int]], figures) -> dict[str, int]:
    return {f: sum(c.get(f, 0) for c in cells) for f in figures}


async def weekly(
    conn: db.Connection, cfg: ReportConfig, m: str, week_start: dt.date, *, with_revision: bool = True
) -> dict[str, Any]:
    """REP-3: every desk's daily figures rolled up into one city-wide table (wards x days, totals)."""
    week_start = week_start - dt.timedelta(days=week_start.weekday())
    days = [week_start + dt.timedelta(days=i) for i in range(7)]
    end = days[-1]
    cells = await _ward_day_counts(conn, cfg, m, week_start, end, WEEKLY_DESK)
    wards = _ward_order(cfg, m, set(cells))
    ward_rows: dict[str, Any] = {}
    for w in wards:
        per_day = {d.isoformat(): _sum([cells[w].get(d, {})], WEEKLY_DESK) for d in days}
        ward_rows[w] = {"days": per_day, "total": _sum(list(per_day.values()), WEEKLY_DESK)}
    day_totals = {d.isoformat(): _sum([ward_rows[w]["days"][d.isoformat()] for w in wards], WEEKLY_DESK) for d in days}
    line_rows = await conn.fetch(
        f"""SELECT day, figure, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND channel = 'line' AND day BETWEEN $2 AND $3 AND figure = ANY($4::text[])
            GROUP BY day, figure""",
        m,
        week_start,
        end,
        list(WEEKLY_LINE),
    )
    line_cells: dict[dt.date, dict[str, int]] = defaultdict(dict)
    for r in line_rows:
        line_cells[r["day"]][r["figure"]] = r["n"]
    line_days = {d.isoformat(): _sum([line_cells.get(d, {})], WEEKLY_LINE) for d in days}
    calendar = await cfg.calendar(conn, m)
    rid = report_id("weekly", "city", week_start)
    report: dict[str, Any] = {
        "report_id": rid,
        "kind": "weekly",
        "scope": "city",
        "scope_id": "city",
        "municipality": m,
        "municipality_name": cfg.municipality(m).name_ja,
        "week_start": week_start.isoformat(),
        "period": _period(week_start, end),
        "title": "週次報告書（全市）",
        "days": [
            {
                "date": d.isoformat(),
                "label": f"{d.month}/{d.day}（{weekday_kanji(d)}）",
                "wareki": to_wareki(d, weekday=True),
                "open": calendar.hours(d).open_day,
            }
            for d in days
        ],
        "wards": [{"ward": w, "ward_name": cfg.ward_name(m, w)} for w in wards],
        "figure_names": {f: FIGURE_JA[f] for f in WEEKLY_DESK},
        "line_figure_names": {f: FIGURE_JA[f] for f in WEEKLY_LINE},
        "figures": {
            "wards": ward_rows,
            "total": {"days": day_totals, "total": _sum(list(day_totals.values()), WEEKLY_DESK)},
            "line": {"days": line_days, "total": _sum(list(line_days.values()), WEEKLY_LINE)},
        },
        "notes": [list(n) for n in CITY_NOTES],
        "signature": signature(cfg, m),
    }
    if with_revision:
        report["revision"] = await revision_info(
            conn, m, rid, flatten(report), await _data_revision(conn, m, "city", "city", week_start)
        )
    return report


async def call_records(conn, m: str, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
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
        at = r["received_at"].astimezone(dt.timezone(dt.timedelta(hours=9)))
        out.append(
            {
                "no": no,
                "call_id": str(r["call_id"]),
                "line": r["line"],
                "date": r["day"].isoformat(),
                "time": at.strftime("%H:%M"),
                "within_hours": r["within_hours"],
                "connection": r["connection"],
                "connection_ja": L.label(L.CONNECTION, r["connection"]),
                "wait_s": r["wait_s"],
                "categories": list(r["categories"] or []),
                "categories_ja": "、".join(L.label(L.CALL_CATEGORY, c) for c in (r["categories"] or [])),
                "resolution": r["resolution"],
                "resolution_ja": L.label(L.RESOLUTION, r["resolution"]),
                "provider_category": r["provider_category"],
                "guided_ward": r["guided_ward"],
                "duration_s": r["duration_s"],
                "notes": await sealed.reveal(m, r["notes"]),
                "opinions": [
                    o | {"text": await sealed.reveal(m, o.get("text"))} if isinstance(o, dict) else o
                    for o in (json.loads(r["opinions"]) if r["opinions"] else [])
                ],
                "callback": r["callback_status"],
                "callback_ja": L.label(L.CALLBACK_STATUS, r["callback_status"]),
            }
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
) -> dict[str, Any]:
    """REP-4: the contract's totals per ward and month, the distributions, the line, the call records."""
    wards_of = await desk_wards(conn, cfg, m)
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
        ward = wards_of.get(r["scope"], r["scope"])
        by_ward[ward][r["figure"]] += r["n"]
        city[r["figure"]] += r["n"]
        if r["figure"] == "visitors":
            by_month[r["month"].strftime("%Y-%m")][ward] += r["n"]
    unserved_weeks: dict[str, int] = defaultdict(int)
    for r in await _unserved(conn, m, None, start, end):  # 来庁者数 includes those who left unserved
        ward = wards_of.get(r["desk"], r["desk"])
        for target in (by_ward[ward], city):
            target["left_unserved"] += r["n"]
        city[f"by_hour.{r['hour']:02d}"] += r["n"]
        by_month[r["day"].strftime("%Y-%m")][ward] += r["n"]
        unserved_weeks[(r["day"] - dt.timedelta(days=r["day"].weekday())).isoformat()] += r["n"]
    wards = _ward_order(cfg, m, set(by_ward))
    wait, service = await _visit_stats(conn, m, None, start, end)
    ward_figures = {}
    for w in wards:
        desks = [d for d, ww in wards_of.items() if ww == w]
        w_wait, w_service = await _visit_stats(conn, m, desks, start, end)
        ward_figures[w] = desk_figures(dict(by_ward.get(w, {})), w_wait, w_service, None)
    months = sorted(by_month)
    line_counts = await _counts(conn, m, "line", None, start, end)
    l_wait, l_duration = await _call_stats(conn, m, None, start, end)
    # the weekly trend (PDF chart): visitors and calls per week
    trend_rows = await conn.fetch(
        f"""SELECT date_trunc('week', day)::date AS week, channel, sum(n)::bigint AS n FROM "{S}".day_count
            WHERE municipality = $1 AND day BETWEEN $2 AND $3 AND figure IN ('visitors', 'received')
            GROUP BY week, channel ORDER BY week""",
        m,
        start,
        end,
    )
    trend: dict[str, dict[str, int]] = defaultdict(lambda: {"visitors": 0, "calls": 0})
    for r in trend_rows:
        trend[r["week"].isoformat()]["visitors" if r["channel"] == "desk" else "calls"] = r["n"]
    for week, n in unserved_weeks.items():
        trend[week]["visitors"] += n
    all_hours = sorted({int(k.split(".")[1]) for k in city if k.startswith("by_hour.")})
    rid = report_id("final", "city", start)
    records = await call_records(conn, m, start, end) if with_records else []
    report: dict[str, Any] = {
        "report_id": rid,
        "kind": "final",
        "scope": "city",
        "scope_id": "city",
        "municipality": m,
        "municipality_name": cfg.municipality(m).name_ja,
        "period": _period(start, end),
        "title": "最終報告書",
        "wards": [{"ward": w, "ward_name": cfg.ward_name(m, w)} for w in wards],
        "months": months,
        "figures": {
            "city": desk_figures(dict(city), wait, service, all_hours),
            "wards": ward_figures,
            "months": {mo: {w: by_month[mo].get(w, 0) for w in wards} for mo in months},
            "line": line_figures(
                line_counts, l_wait, l_duration, None, await _unreached_people(conn, m, None, start, end)
            ),
            "weekly_trend": {wk: dict(v) for wk, v in sorted(trend.items())},
            "call_records": await conn.fetchval(
                f'SELECT count(*) FROM "{S}".call_record WHERE municipality = $1 AND day BETWEEN $2 AND $3',
                m,
                start,
                end,
            ),
        },
        "escalations": await _notes(conn, m, "desk", None, start, end, "escalation"),
        "line_escalations": await _notes(conn, m, "line", None, start, end, "escalation"),
        "call_records": records,
        "notes": [list(n) for n in DESK_NOTES + LINE_NOTES],
        "signature": signature(cfg, m),
    }
    if with_revision:
        report["revision"] = await revision_info(conn, m, rid, flatten(report), 0)
    return report


FIGURE_JA: dict[str, str] = LABELS
