"""Pure rules of the console's pages: the Japanese labels of the forms' choices and how the HQ board rates
a desk (desk_severity). Who sees which screen is in permissions.py. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from madoguchi_shared import labels as L

# --- Japanese labels of the services' codes (the events keep stable codes; labels live here) ---

GENDERS = L.GENDER
AGE_BANDS = L.AGE_BAND
PURPOSES = L.PURPOSE
OUTCOMES = L.OUTCOME
NOT_COMPLETED_REASONS = L.NOT_COMPLETED_REASON
PAYMENT_SERVICES = {k: v for k, v in L.PAYMENT_SERVICE.items() if k != "prepaid"}  # the form offers the event's codes
OPINION_KINDS = {k: v for k, v in L.OPINION_KIND.items() if k != "struggle"}
PROCEDURE_STEPS = L.PROCEDURE_STEP
PIN_KINDS = L.PIN_KIND
PIN_LIMITS = {"user_auth": 3, "card_info": 3, "signature": 5}
STOP_REASONS = L.STOP_REASON
INSTRUCTION_REASONS = L.INSTRUCTION_REASON
ESCALATION_CATEGORIES = L.ESCALATION_CATEGORY
ABSENCE_REASONS = L.ABSENCE_REASON
SEVERITIES = L.SEVERITY


def options(mapping: dict[str, str]) -> list[tuple[str, str]]:
    return list(mapping.items())


def label(mapping: dict[str, str], code: object) -> str:
    if code is None:
        return "—"
    return mapping.get(str(code), str(code))


# --- HQ: how much trouble a desk is in (issue 16) ---

SEVERITY_ORDER = {"red": 0, "amber": 1, "ok": 2, "closed": 3, "unknown": 4}
SEVERITY_LABELS = {"red": "要対応", "amber": "注意", "ok": "通常", "closed": "時間外", "unknown": "不明"}


@dataclass(frozen=True)
class Thresholds:
    wait_amber_minutes: float = 30
    wait_red_minutes: float = 60
    queue_amber: int = 8
    queue_red: int = 15


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object of the desk's status, or an empty one where it holds nothing (or something else)."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return cast(list[Any], value) if isinstance(value, list) else []


def desk_severity(status: dict[str, Any] | None, t: Thresholds) -> tuple[str, list[str]]:
    """(red | amber | ok | closed | unknown, the reasons in Japanese) from a desk's status: the
    wait (the longest current wait or the estimate for a newcomer, whichever is longer), the
    queue, staffing and the desk's own alerts."""
    if status is None:
        return "unknown", ["状態を取得できません"]
    waiting = len(_items(_obj(status.get("queue")).get("waiting")))
    wait = max(float(status.get("estimated_wait_minutes") or 0), float(status.get("longest_wait_minutes") or 0))
    red: list[str] = []
    amber: list[str] = []
    if _obj(status.get("staffing")).get("breach_open"):
        red.append("支援員不在")
    if any(_obj(a).get("level") == "urgent" for a in _items(status.get("alerts"))):
        red.append("緊急のお知らせ")
    if status.get("day_status") in ("halted", "cannot_start"):
        red.append("業務停止")
    if wait > t.wait_red_minutes:
        red.append(f"待ち時間{round(wait)}分")
    elif wait > t.wait_amber_minutes:
        amber.append(f"待ち時間{round(wait)}分")
    if waiting >= t.queue_red:
        red.append(f"待ち{waiting}人")
    elif waiting >= t.queue_amber:
        amber.append(f"待ち{waiting}人")
    link = _obj(status.get("edge_link"))
    if link and not link.get("online", True):  # the desk's laptop works offline: HQ sees its last known queue
        amber.append(link.get("label_ja") or "オフライン")
    if status.get("marked"):
        amber.append(f"オフライン中の記録 要確認{len(status['marked'])}件")
    if red:
        return "red", red + amber
    if amber:
        return "amber", amber
    if not status.get("open_now") and not waiting:
        return "closed", []
    return "ok", []
