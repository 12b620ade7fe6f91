"""Every report figure in one place: its key, its Japanese label and its rounding rule.

The reporting projections count, the queries read, the verifier recounts, the layout prints, the
console shows and the simulator's ground truth predicts the same figures; they all name them
through `Fig` (a `str` enum: a member IS its key, so stored JSON and dict keys are unchanged)
and round them with the functions below, so a share or a mean cannot be computed two ways.

Rounding rules (REP-1, REP-2):
* a duration is kept as integer milliseconds (`to_ms`), so sums are exact;
* a share is a fraction rounded to 4 places (`share`; shown as a percentage with 2 decimals);
* a mean duration is in seconds to 0.1 s, half up, in integer arithmetic (`mean_tenths`);
* a 90th percentile is the nearest-rank value (`p90_rank`); a total of milliseconds shown in
  seconds is rounded half up to whole seconds (`whole_seconds`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any


class Rule(enum.StrEnum):
    """How a figure is rounded and shown."""

    count = "count"  # an integer  # pyright: ignore[reportAssignmentType] - the member (not str.count) by design
    share = "share"  # a fraction to 4 places, shown as %
    seconds = "seconds"  # whole seconds (from a millisecond total)


class Fig(enum.StrEnum):
    """The flat figures of the daily, weekly and final reports (families such as `by_hour.09`
    are built with `family`)."""

    # desk (REP-1)
    visitors = "visitors"
    tickets_issued = "tickets_issued"
    no_shows = "no_shows"
    support_needed = "support_needed"
    support_given = "support_given"
    support_needed_ratio = "support_needed_ratio"
    support_given_ratio = "support_given_ratio"
    completed = "completed"
    not_completed = "not_completed"
    in_service = "in_service"
    details_recorded = "details_recorded"
    escalations = "escalations"
    escalations_to_city = "escalations_to_city"
    opinions = "opinions"
    pin_failures = "pin_failures"
    pin_locks = "pin_locks"
    pin_lock_warnings = "pin_lock_warnings"
    cards_handed = "cards_handed"
    card_incidents = "card_incidents"
    disinfections = "disinfections"
    disinfection_misses = "disinfection_misses"
    disinfection_compliance = "disinfection_compliance"
    masks_checked = "masks_checked"
    masks_missing = "masks_missing"
    staffing_breaches = "staffing_breaches"
    staffing_breach_s = "staffing_breach_s"
    short_absences = "short_absences"
    capacity_alerts = "capacity_alerts"
    recalls = "recalls"
    day_stops = "day_stops"
    visit_corrections = "visit_corrections"
    # phone line (REP-2)
    received = "received"
    received_in_hours = "received_in_hours"
    answered = "answered"
    missed = "missed"
    missed_callback_chosen = "missed_callback_chosen"
    abandoned = "abandoned"
    out_of_hours = "out_of_hours"
    never_connected = "never_connected"
    never_connected_share = "never_connected_share"
    answer_rate = "answer_rate"
    overflow_offered = "overflow_offered"
    closed = "closed"
    callbacks_opened = "callbacks_opened"
    callbacks_done = "callbacks_done"
    staffing_gap_s = "staffing_gap_s"
    # added with the specification's definitions (仕様書 4(5)オ, issue 16)
    support_given_of_needed = "support_given_of_needed"
    served = "served"
    left_unserved = "left_unserved"
    after_hours_guided = "after_hours_guided"
    repeat_calls = "repeat_calls"
    never_connected_people = "never_connected_people"
    # a call neither answered nor ended unconnected when the report is made (ringing, queued, a callback
    # chosen and the call not yet hung up): received = answered + never_connected + still_waiting
    still_waiting = "still_waiting"


class Family(enum.StrEnum):
    """Figures broken down by a code: `family(Family.by_hour, "09")` is "by_hour.09"."""

    by_hour = "by_hour"
    by_gender = "by_gender"
    by_age_band = "by_age_band"
    by_purpose = "by_purpose"
    payment_services = "payment_services"
    not_completed_reasons = "not_completed_reasons"
    outcomes_by_purpose = "outcomes_by_purpose"
    incidents = "incidents"
    escalations_by_category = "escalations_by_category"
    opinions_by_kind = "opinions_by_kind"
    difficulties_by_step = "difficulties_by_step"
    by_resolution = "by_resolution"
    by_category = "by_category"
    by_provider = "by_provider"
    guided_ward = "guided_ward"
    offer_choices = "offer_choices"
    callbacks = "callbacks"
    # the duration statistics (n, mean_s, p90_s, max_s) of the desk and the line
    wait = "wait"
    service = "service"
    answer_wait = "answer_wait"
    duration = "duration"


class Stored(enum.StrEnum):
    """Counters the projections store under a name of their own (the report derives its figure):
    `details_n` -> details_recorded, `staffing_breach_ms` -> staffing_breach_s, `callbacks_failed`
    -> callbacks.failed, a family `outcome_by_purpose.<purpose>.<outcome>` -> outcomes_by_purpose."""

    details_n = "details_n"
    staffing_breach_ms = "staffing_breach_ms"
    staffing_gap_s_sum = "staffing_gap_s_sum"
    outcome_by_purpose = "outcome_by_purpose"
    not_completed_reason = "not_completed_reason"
    payment_service = "payment_service"
    callbacks_failed = "callbacks_failed"
    callbacks_cancelled = "callbacks_cancelled"
    callbacks_overdue = "callbacks_overdue"
    callbacks_to_city = "callbacks_to_city"
    callbacks_city_answered = "callbacks_city_answered"


def family(name: Family | str, *codes: str) -> str:
    return ".".join((str(name), *codes))


LABELS: dict[str, str] = {
    Fig.visitors: "来庁者数",
    Fig.tickets_issued: "受付番号札発行数",
    Fig.no_shows: "呼出し時不在",
    Fig.support_needed: "うち支援が必要な方",
    Fig.support_given: "うち支援を実施した方",
    Fig.support_needed_ratio: "支援が必要な方の割合（対来庁者数）",
    Fig.support_given_ratio: "支援を実施した方の割合（対来庁者数）",
    Fig.support_given_of_needed: "支援実施率（実施／必要）",
    Fig.served: "うち対応した方",
    Fig.left_unserved: "うち対応前に帰られた方",
    Fig.completed: "対応完了件数",
    Fig.not_completed: "未完了件数",
    Fig.in_service: "対応中",
    Fig.details_recorded: "属性記録数",
    Fig.escalations: "エスカレーション件数",
    Fig.escalations_to_city: "うち市へ照会",
    Fig.opinions: "ご意見・トピック件数",
    Fig.pin_failures: "暗証番号誤り",
    Fig.pin_locks: "暗証番号ロック",
    Fig.pin_lock_warnings: "ロック直前の注意喚起",
    Fig.cards_handed: "カードお預かり",
    Fig.card_incidents: "カード置き忘れ",
    Fig.disinfections: "消毒実施回数",
    Fig.disinfection_misses: "消毒前の対応開始",
    Fig.disinfection_compliance: "消毒遵守率",
    Fig.masks_checked: "マスク確認",
    Fig.masks_missing: "マスク未着用",
    Fig.staffing_breaches: "支援員不在（人員配置違反）",
    Fig.staffing_breach_s: "不在時間（秒）",
    Fig.short_absences: "短時間不在",
    Fig.capacity_alerts: "混雑アラート",
    Fig.recalls: "再呼出し",
    Fig.day_stops: "業務中断",
    Fig.visit_corrections: "訂正件数",
    Fig.received: "入電数",
    Fig.received_in_hours: "うち受付時間内",
    Fig.answered: "応答数",
    Fig.missed: "不応答",
    Fig.missed_callback_chosen: "うち折り返し希望",
    Fig.abandoned: "放棄呼",
    Fig.out_of_hours: "時間外入電",
    Fig.never_connected: "つながらなかった呼",
    Fig.never_connected_share: "つながらなかった割合",
    Fig.answer_rate: "応答率",
    Fig.overflow_offered: "混雑時の案内",
    Fig.after_hours_guided: "時間外の案内",
    Fig.repeat_calls: "再入電（受付番号で確認）",
    Fig.never_connected_people: "つながらなかった方（人数）",
    Fig.still_waiting: "応答待ちのまま（集計時点）",
    Fig.closed: "対応記録数",
    Fig.callbacks_opened: "折り返し受付",
    Fig.callbacks_done: "折り返し完了",
    Fig.staffing_gap_s: "席不在時間（秒）",
    family(Family.offer_choices, "wait"): "うち待つを選択",
    family(Family.offer_choices, "callback"): "うち折り返しを選択",
    family(Family.offer_choices, "call_again"): "うちかけ直しを選択",
    family(Family.callbacks, "opened"): "折り返し受付",
    family(Family.callbacks, "done"): "折り返し完了",
    family(Family.callbacks, "failed"): "折り返し不通",
    family(Family.callbacks, "cancelled"): "折り返し取消",
    family(Family.callbacks, "overdue"): "折り返し期限超過",
    family(Family.callbacks, "to_city"): "折り返し：市へ照会",
    family(Family.callbacks, "city_answered"): "折り返し：市の回答あり",
    family(Family.wait, "mean_s"): "平均待ち（分）",
    family(Family.service, "mean_s"): "平均対応（分）",
}

# The phone line's wording where it differs from the desk's.
LINE_LABELS: dict[str, str] = {
    Fig.staffing_breaches: "オペレーター不在",
    Fig.staffing_gap_s: "不在時間（分）",
}

# Column headings of the wide tables (city-wide daily, final report's ward table).
SHORT_LABELS: dict[str, str] = {
    Fig.support_needed: "支援必要",
    Fig.support_needed_ratio: "割合",
    Fig.support_given: "支援実施",
    Fig.support_given_ratio: "割合",
    Fig.completed: "完了",
    Fig.not_completed: "未完了",
    Fig.escalations: "エスカレーション",
    Fig.opinions: "ご意見等",
}

# The figures each table of a report shows, in order: the reports build them, the files print them,
# the console shows them and the verifier recounts them from these lists.
WEEKLY_DESK = (
    Fig.visitors,
    Fig.support_needed,
    Fig.support_given,
    Fig.completed,
    Fig.not_completed,
    Fig.no_shows,
    Fig.escalations,
    Fig.opinions,
)  # per ward and day (REP-3); also the final report's ward table
WEEKLY_LINE = (
    Fig.received,
    Fig.answered,
    Fig.missed,
    Fig.abandoned,
    Fig.out_of_hours,
    Fig.still_waiting,
    Fig.escalations,
    Fig.callbacks_opened,
    Fig.callbacks_done,
    Fig.opinions,
)  # the phone line per day (REP-3)
CITY_DESK = (
    Fig.visitors,
    Fig.support_needed,
    Fig.support_needed_ratio,
    Fig.support_given,
    Fig.support_given_ratio,
    Fig.completed,
    Fig.not_completed,
    Fig.no_shows,
    Fig.escalations,
    Fig.opinions,
    family(Family.wait, "mean_s"),
    family(Family.service, "mean_s"),
)  # a desk's columns of the city-wide daily report
CITY_LINE = (
    Fig.received,
    Fig.answered,
    Fig.answer_rate,
    Fig.never_connected,
    Fig.never_connected_people,
    Fig.still_waiting,
    Fig.out_of_hours,
    Fig.overflow_offered,
    Fig.after_hours_guided,
    Fig.closed,
    Fig.escalations,
    family(Family.callbacks, "opened"),
    family(Family.callbacks, "done"),
    Fig.opinions,
)  # the phone line's row of the city-wide daily report

RULES: dict[Fig, Rule] = {f: Rule.count for f in Fig} | {
    Fig.support_needed_ratio: Rule.share,
    Fig.support_given_ratio: Rule.share,
    Fig.disinfection_compliance: Rule.share,
    Fig.support_given_of_needed: Rule.share,
    Fig.never_connected_share: Rule.share,
    Fig.answer_rate: Rule.share,
    Fig.staffing_breach_s: Rule.seconds,
    Fig.staffing_gap_s: Rule.seconds,
}


def label(key: str) -> str:
    """The Japanese label of a figure (the key itself for a figure without one)."""
    return LABELS.get(key, key)


def line_label(key: str) -> str:
    """A figure's label in the phone line's reports."""
    return LINE_LABELS.get(key) or label(key)


def short_label(key: str) -> str:
    """A figure's column heading in a wide table."""
    return SHORT_LABELS.get(key) or label(key)


def figure_keys() -> frozenset[str]:
    """Every figure and stored-counter name: what no module but this one spells as a string."""
    return frozenset({*Fig, *Family, *Stored, *(k for k in LABELS if "." in k)})


# --- the rounding rules ----------------------------------------------------------------------------


def to_ms(seconds: float) -> int:
    """Durations are kept as integer milliseconds, so sums and means are exact."""
    return round(seconds * 1000)


def whole_seconds(total_ms: int) -> int:
    """A millisecond total in whole seconds, half up."""
    return (total_ms + 500) // 1000


def share(a: int, b: int) -> float | None:
    """a / b to 4 places; None when b is 0 (a share of nothing is no figure)."""
    return round(a / b, 4) if b else None


def mean_tenths(total_ms: int, n: int) -> float | None:
    """Mean of millisecond durations in seconds, to 0.1 s, half up (integer arithmetic: exact)."""
    if not n:
        return None
    return ((2 * total_ms + n * 100) // (n * 200)) / 10


def p90_rank(n: int) -> int:
    """The nearest rank (1-based) of the 90th percentile of n values: ceil(0.9 n)."""
    return -(-9 * n // 10)


def duration_stats(n: int, total_ms: int, p90_ms: int | None, max_ms: int | None) -> dict[str, Any]:
    """n, mean (0.1 s), 90th percentile and maximum (s) of a duration."""
    return {
        "n": n,
        "mean_s": mean_tenths(total_ms, n),
        "p90_s": p90_ms / 1000 if p90_ms is not None else None,
        "max_s": max_ms / 1000 if max_ms is not None else None,
    }


def stats(values_ms: Sequence[int]) -> dict[str, Any]:
    """`duration_stats` of a list of millisecond durations ({"n": 0} for none)."""
    n = len(values_ms)
    if not n:
        return {"n": 0}
    ordered = sorted(values_ms)
    return duration_stats(n, sum(ordered), ordered[p90_rank(n) - 1], ordered[-1])


__all__ = [
    "Fig",
    "Family",
    "Rule",
    "Stored",
    "WEEKLY_DESK",
    "WEEKLY_LINE",
    "CITY_DESK",
    "CITY_LINE",
    "LABELS",
    "LINE_LABELS",
    "SHORT_LABELS",
    "line_label",
    "short_label",
    "figure_keys",
    "RULES",
    "family",
    "label",
    "to_ms",
    "whole_seconds",
    "share",
    "mean_tenths",
    "p90_rank",
    "duration_stats",
    "stats",
]
