"""What every report carries besides its figures: the period in both calendars, the signature
block, the 注記 (what each figure means) and the revision (delivered versions, changes since)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from madoguchi_shared.wareki import heading_date, heading_period, to_wareki

from madoguchi_reporting.config import ReportConfig
from madoguchi_reporting.reports import models as md
from madoguchi_reporting.reports.compute import diff_figures
from madoguchi_reporting.schema import SCHEMA as S

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
    ("開設前・契約終了", "契約による業務開始日（窓口開設日）より前の日、契約期間の終了後の日（窓口・電話とも）。"),
]


def period(start: dt.date, end: dt.date) -> md.Period:
    return md.Period(
        start=start,
        end=end,
        start_wareki=to_wareki(start, weekday=True),
        end_wareki=to_wareki(end, weekday=True),
        heading=heading_date(start) if start == end else heading_period(start, end),
    )


def signature(cfg: ReportConfig, m: str) -> md.Signature:
    """The report's signature block: contractor (受託者), submission date (提出日, set when delivered)
    and the city's approval boxes (承認欄), from the municipality configuration."""
    sig = cfg.municipality(m).report
    return md.Signature(contractor=sig.contractor_ja, approvals=list(sig.approvals))


def frame(cfg: ReportConfig, m: str, rid: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """The fields every report starts with."""
    return {
        "report_id": rid,
        "municipality": m,
        "municipality_name": cfg.municipality(m).name_ja,
        "period": period(start, end),
        "signature": signature(cfg, m),
    }


async def revision_info(
    conn: Any, m: str, rid: str, figures_flat: dict[str, int | float], data_revision: int
) -> md.Revision:
    rows = await conn.fetch(
        f"""SELECT revision, submitted_at, submitted_by, sha256, figures FROM "{S}".report_submission
            WHERE municipality = $1 AND report_id = $2 ORDER BY revision""",
        m,
        rid,
    )
    submitted = [
        md.Delivered(
            revision=r["revision"],
            submitted_at=r["submitted_at"].isoformat(),
            submitted_by=r["submitted_by"],
            sha256=r["sha256"],
        )
        for r in rows
    ]
    if not rows:
        return md.Revision(data_revision=data_revision, submitted=[], status="draft", label_ja="未提出")
    last = rows[-1]["revision"]
    changes = diff_figures(json.loads(rows[-1]["figures"]), figures_flat)
    if changes:
        return md.Revision(
            data_revision=data_revision,
            submitted=submitted,
            status="revised",
            revision=last + 1,
            based_on=last,
            changes=changes,
            label_ja=f"第{last + 1}版（第{last}版提出後の訂正あり・未提出）",
        )
    return md.Revision(
        data_revision=data_revision,
        submitted=submitted,
        status="submitted",
        revision=last,
        label_ja=f"第{last}版（提出済）",
    )


async def data_revision(conn: Any, m: str, channel: str, scope: str, day: dt.date) -> int:
    return (
        await conn.fetchval(
            f"""SELECT data_revision FROM "{S}".report_day
                WHERE municipality = $1 AND channel = $2 AND scope = $3 AND day = $4""",
            m,
            channel,
            scope,
            day,
        )
        or 0
    )
