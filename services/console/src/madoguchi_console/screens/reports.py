"""Reports for city staff and the manager (issue 8 §4; REP-1..6): daily (desk and phone line),
weekly and final reports with charts, downloads as xlsx, PDF and CSV, and the deliverables with
their deadlines. Everything comes from the reporting service (/v1/reports, /v1/deliverables);
downloads are passed through unchanged (the files are the reporting service's own)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from madoguchi_console import charts, domain
from madoguchi_console.deps import Api, ReportsSession
from madoguchi_console.forms import read_form
from madoguchi_console.upstream import ApiError, Upstream
from madoguchi_console.views import render, set_flash
from madoguchi_shared.events.base import Role
from madoguchi_shared import labels as L
from madoguchi_shared.figures import CITY_DESK, CITY_LINE, LABELS, Family, Fig, family, label, short_label

router = APIRouter(include_in_schema=False)
JST = ZoneInfo("Asia/Tokyo")
TABS = {
    "daily": "日次（窓口）",
    "city": "日次（全市）",
    "line": "日次（電話）",
    "weekly": "週次",
    "final": "最終報告",
    "deliverables": "納入成果物",
}
FORMATS = {"xlsx": "Excel形式", "pdf": "PDF（印刷用）", "csv": "CSV形式"}
DELIVERABLE_STATUS = {"pending": "未提出", "submitted": "提出済み", "overdue": "期限超過"}
DESK_ROWS = (
    Fig.visitors,
    Fig.left_unserved,
    Fig.tickets_issued,
    Fig.no_shows,
    Fig.support_needed,
    Fig.support_given,
    Fig.completed,
    Fig.not_completed,
    Fig.escalations,
    Fig.opinions,
    Fig.pin_failures,
    Fig.card_incidents,
    Fig.disinfections,
    Fig.disinfection_misses,
    Fig.staffing_breaches,
)
LINE_ROWS = (
    Fig.received,
    Fig.answered,
    Fig.missed,
    Fig.abandoned,
    Fig.out_of_hours,
    Fig.never_connected,
    Fig.never_connected_people,
    Fig.overflow_offered,
    *(family(Family.offer_choices, o) for o in ("wait", "callback", "call_again")),
    Fig.after_hours_guided,
    Fig.repeat_calls,
    Fig.closed,
    Fig.escalations,
    Fig.opinions,
)
# percentages shown under the counts (shares of 来庁者数 per the specification, and given / needed)
DESK_RATIOS = (Fig.support_needed_ratio, Fig.support_given_ratio, Fig.support_given_of_needed)
RATIO_ROWS = {
    "daily": tuple((k, label(k)) for k in DESK_RATIOS),
    "final": tuple((k, label(k)) for k in DESK_RATIOS),
    "line": tuple((k, label(k)) for k in (Fig.answer_rate, Fig.never_connected_share)),
}
KINDS = {f: "pct" for f in (Fig.support_needed_ratio, Fig.support_given_ratio, Fig.answer_rate)} | {
    family(Family.wait, "mean_s"): "min",
    family(Family.service, "mean_s"): "min",
}
CITY_COLUMNS = tuple((k, short_label(k), KINDS.get(k, "int")) for k in CITY_DESK)
CITY_LINE_ROWS = tuple((k, label(k), KINDS.get(k, "int")) for k in CITY_LINE)
FIGURE_LABELS = LABELS


def figure(fig: dict, key: str):
    """A dotted figure key's value ("wait.mean_s")."""
    value = fig
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def show(value, kind: str) -> str:
    """A figure as the screen shows it: counts, percentages to 0.1, minutes to 0.1 (from seconds)."""
    if value is None:
        return "－"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "min":
        return f"{int(value * 10 / 60 + 0.5) / 10:.1f}"
    return f"{value:,}" if isinstance(value, int | float) else str(value)


RESOLUTIONS = L.RESOLUTION
UNKNOWN = {"unknown": "不明"}  # the gender / age band of those who left before being served


async def service_today(api: Upstream) -> date:
    """'Today' as the services see it (their calendar), else today in Japan."""
    try:
        return date.fromisoformat((await api.get("desk", "/v1/calendar/next-business-day"))["after"])
    except (ApiError, KeyError, ValueError):
        return datetime.now(JST).date()


def _parse_date(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def _pairs(mapping: dict[str, Any] | None, labels: dict[str, str]) -> list[tuple[str, Any]]:
    return [(labels.get(k, k), v) for k, v in (mapping or {}).items()]


def desk_charts(fig: dict) -> list[tuple[str, Any]]:
    return [
        (
            "時間帯別の来庁者数",
            charts.columns(
                [(f"{h}時", n) for h, n in (fig.get(Family.by_hour) or {}).items()], title="時間帯別の来庁者数"
            ),
        ),
        ("性別", charts.hbars(_pairs(fig.get(Family.by_gender), {**domain.GENDERS, **UNKNOWN}), title="性別")),
        ("年代別", charts.hbars(_pairs(fig.get(Family.by_age_band), {**domain.AGE_BANDS, **UNKNOWN}), title="年代別")),
        ("来訪目的", charts.hbars(_pairs(fig.get(Family.by_purpose), domain.PURPOSES), title="来訪目的")),
    ]


def line_charts(fig: dict) -> list[tuple[str, Any]]:
    out = []
    if fig.get(Family.by_hour):
        out.append(
            (
                "時間帯別の入電数",
                charts.columns([(f"{h}時", n) for h, n in fig[Family.by_hour].items()], title="時間帯別の入電数"),
            )
        )
    out.append(("対応結果", charts.hbars(_pairs(fig.get(Family.by_resolution), RESOLUTIONS), title="対応結果")))
    return out


@router.get("/reports")
async def reports(request: Request, session: ReportsSession, api: Api, tab: str = "daily"):
    """Reports: daily, weekly, final, deliverables."""
    tab = tab if tab in TABS else "daily"
    params = request.query_params
    today = await service_today(api)
    day = _parse_date(params.get("date"), today)
    ctx: dict[str, Any] = {
        "tab": TABS,
        "current": tab,
        "day": day,
        "FORMATS": FORMATS,
        "FIGURE_LABELS": FIGURE_LABELS,
        "ratios": RATIO_ROWS.get(tab, ()),
        "figure": figure,
        "show": show,
        "CITY_COLUMNS": CITY_COLUMNS,
        "CITY_LINE": CITY_LINE_ROWS,
        "is_manager": Role.manager in session.roles,
        "DELIVERABLE_STATUS": DELIVERABLE_STATUS,
    }
    error = None
    try:
        if tab == "daily":
            desks = (await api.get("desk", "/v1/desks"))["desks"]
            desk = params.get("desk") or (desks[0]["desk"] if desks else None)
            ctx.update(desks=desks, desk=desk)
            if desk:
                report = await api.get("reporting", "/v1/reports/daily", {"desk": desk, "date": day.isoformat()})
                ctx.update(
                    report=report,
                    rows=DESK_ROWS,
                    charts=desk_charts(report.get("figures") or {}),
                    download={"kind": "daily", "desk": desk, "date": day.isoformat()},
                )
        elif tab == "city":
            report = await api.get("reporting", "/v1/reports/city/daily", {"date": day.isoformat()})
            fig = report.get("figures") or {}
            ctx.update(
                report=report,
                download={"kind": "city", "date": day.isoformat()},
                charts=[
                    (
                        "区別の来庁者数",
                        charts.hbars(
                            [
                                (d["ward_name"], figure(fig, family("desks", d["desk"], Fig.visitors)) or 0)
                                for d in report.get("desks", [])
                            ],
                            title="区別の来庁者数",
                        ),
                    )
                ],
            )
        elif tab == "line":
            report = await api.get("reporting", "/v1/reports/line/daily", {"date": day.isoformat()})
            ctx.update(
                report=report,
                rows=LINE_ROWS,
                charts=line_charts(report.get("figures") or {}),
                download={"kind": "line", "date": day.isoformat()},
            )
        elif tab == "weekly":
            week_start = _parse_date(params.get("week"), day - timedelta(days=day.weekday()))
            report = await api.get("reporting", "/v1/reports/weekly", {"week_start": week_start.isoformat()})
            wards = report.get("wards") or []
            rows = report.get("figures", {}).get("wards", {})
            ctx.update(
                report=report,
                week=week_start,
                download={"kind": "weekly", "week": week_start.isoformat()},
                charts=[
                    (
                        "区別の来庁者数（週計）",
                        charts.hbars(
                            [
                                (w["ward_name"], figure(rows, family(w["ward"], "total", Fig.visitors)) or 0)
                                for w in wards
                            ],
                            title="区別の来庁者数",
                        ),
                    )
                ],
            )
        elif tab == "final":
            q = {"from": params.get("from"), "to": params.get("to")}
            report = await api.get("reporting", "/v1/reports/final", q)
            fig = report.get("figures", {})
            trend = fig.get("weekly_trend") or {}
            ctx.update(
                report=report,
                rows=DESK_ROWS,
                q=q,
                download={"kind": "final", **{k: v for k, v in q.items() if v}},
                charts=[
                    (
                        "週別の来庁者数",
                        charts.columns(
                            [(k[5:], v.get(Fig.visitors, 0)) for k, v in trend.items()], title="週別の来庁者数"
                        ),
                    ),
                    (
                        "週別の入電数",
                        charts.columns([(k[5:], v.get("calls", 0)) for k, v in trend.items()], title="週別の入電数"),
                    ),
                    *desk_charts(fig.get("city") or {})[1:],
                ],
            )
        else:
            doc = await api.get("reporting", "/v1/deliverables")
            items = doc.get("deliverables", [])
            show_all = bool(params.get("all"))
            if not show_all:
                # REP-6: what needs attention now: overdue, due within two weeks, and the plans and final report.
                horizon = (today + timedelta(days=14)).isoformat()
                items = [
                    d
                    for d in items
                    if d["status"] == "overdue"
                    or (d["due"] <= horizon and d["due"] >= (today - timedelta(days=7)).isoformat())
                    or d["kind"] not in ("daily_report", "weekly_report")
                ][:30]
            ctx.update(
                deliverables={**doc, "deliverables": items}, show_all=show_all, total=len(doc.get("deliverables", []))
            )
    except ApiError as exc:
        if exc.status == 401:
            raise
        error = exc.detail
    return render(request, "reports.html", active="reports", form_error=error, **ctx)


@router.get("/reports/download")
async def download(request: Request, session: ReportsSession, api: Api, kind: str, format: str = "xlsx"):
    """A report file (xlsx, PDF, CSV) exactly as the reporting service renders it."""
    if format not in FORMATS:
        format = "xlsx"
    q = request.query_params
    routes = {
        "daily": ("/v1/reports/daily", {"desk": q.get("desk"), "date": q.get("date")}),
        "line": ("/v1/reports/line/daily", {"date": q.get("date")}),
        "city": ("/v1/reports/city/daily", {"date": q.get("date")}),
        "weekly": ("/v1/reports/weekly", {"week_start": q.get("week")}),
        "final": ("/v1/reports/final", {"from": q.get("from"), "to": q.get("to")}),
    }
    if kind not in routes:
        raise ApiError(404, "見つかりません", "報告書の種類が正しくありません。")
    path, params = routes[kind]
    upstream = await api.request("GET", "reporting", path, params={**params, "format": format}, timeout=120)
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-disposition", "content-type")}
    headers["cache-control"] = "no-store"
    return Response(upstream.content, status_code=200, headers=headers)


@router.post("/reports/deliverables/{deliverable_id}/submit")
async def submit(request: Request, deliverable_id: str, session: ReportsSession, api: Api):
    """The manager records a deliverable as submitted (its reports are frozen as delivered)."""
    try:
        await api.post("reporting", f"/v1/deliverables/{deliverable_id}/submit", {})
        message = "提出を記録しました。"
    except ApiError as exc:
        if exc.status == 401:
            raise
        message = f"提出できません：{exc.detail}"
    response = RedirectResponse("/reports?tab=deliverables", status_code=303)
    set_flash(response, message)
    return response


@router.post("/reports/deliverables/plan")
async def plan(request: Request, session: ReportsSession, api: Api):
    """Define the contract's deliverables and their due dates (REP-6)."""
    await read_form(request)
    try:
        await api.post("reporting", "/v1/deliverables/plan", {})
        message = "納入成果物と期限を登録しました。"
    except ApiError as exc:
        if exc.status == 401:
            raise
        message = f"登録できません：{exc.detail}"
    response = RedirectResponse("/reports?tab=deliverables", status_code=303)
    set_flash(response, message)
    return response
