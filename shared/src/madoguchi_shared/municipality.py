"""Municipal configuration (ORG-1, DESK-1, DESK-2, DESK-10, CALL-1), loaded from TOML.

One file per municipality, named after its 6-digit local government code, under
`config/municipalities/` (e.g. `011002.toml` for Sapporo). Another municipality is another
file: nothing in the code knows Sapporo.

    m = load_municipality("011002")            # by code, searched in the config folders
    m = load_municipality("path/to/x.toml")     # by path
    m.desk("chuo-1").expected_max_visitors      # 80
    m.calendar().hours(date(2021, 4, 4), "chuo-1")

Config folders searched for a code, first hit wins: `config_dir` argument, `$MADOGUCHI_CONFIG_DIR`,
`./config/municipalities`, and the repository's `config/municipalities` next to the package.
"""

from __future__ import annotations

import math
import os
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from madoguchi_shared.calendar import Calendar, Hours, Instruction, SpecialDay
from madoguchi_shared.narrow import is_dict

__all__ = [
    "Desk",
    "Ward",
    "OpeningHours",
    "SpecialDayConfig",
    "PhoneLine",
    "EquipmentItem",
    "Municipality",
    "MunicipalityNotFound",
    "load_municipality",
    "config_dirs",
    "TrainingItem",
    "TrainingPlan",
    "DUTIES",
]

Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OpeningHours(_Frozen):
    open: time = time(8, 45)
    close: time = time(17, 15)

    @model_validator(mode="after")
    def _order(self) -> OpeningHours:
        if not self.open < self.close:
            raise ValueError("open must be before close")
        return self


class Desk(_Frozen):
    id: Ident  # e.g. chuo-1; part of subjects and deskday ids
    ward: Ident
    name_ja: str
    expected_max_visitors: int = Field(default=80, ge=1)  # DESK-2 (対応想定数)


class Ward(_Frozen):
    id: Ident
    name_ja: str  # 中央区
    name_en: str = ""
    desks: tuple[Desk, ...] = Field(min_length=1)


class SpecialDayConfig(_Frozen):
    date: date
    kind: Literal["special_opening", "extended", "closed"]
    open: time | None = None
    close: time | None = None
    desks: tuple[Ident, ...] = ()  # empty = every desk
    note: str = ""

    def to_calendar(self) -> SpecialDay:
        return SpecialDay(self.date, self.kind, self.open, self.close, frozenset(self.desks), self.note)


class PhoneLine(_Frozen):
    """CALL-1: the phone line's hours, expected load and minimum staffing."""

    hours: OpeningHours = OpeningHours()
    expected_max_calls_per_day: int = Field(default=20, ge=1)
    min_seats: int = Field(default=1, ge=1)


class EquipmentItem(_Frozen):
    """DESK-10: one line of the per-desk equipment list."""

    no: int = Field(ge=1)
    key: Ident
    name_ja: str
    quantity: str = "1"  # as the specification words it: 1, 2程度, 必要量, 1式 ...
    valuable: bool = False  # theft and loss prevention (DESK-10, SEC-4)
    incident_if_missing: bool = False  # missing at an equipment check = an incident (ORG-3)


DUTIES = ("desk", "phone")  # 窓口（支援員） and 電話（オペレーター）


class TrainingItem(_Frozen):
    """ORG-4: one item of the training plan (研修計画書), taught before duty."""

    key: Ident
    name_ja: str
    hours: float = Field(default=1.0, ge=0, le=40)
    duties: tuple[Literal["desk", "phone"], ...] = DUTIES  # the duties this item clears for


class TrainingPlan(_Frozen):
    """ORG-4: the items each person completes and the test they pass before duty."""

    items: tuple[TrainingItem, ...] = (
        TrainingItem(key="compliance", name_ja="コンプライアンス（個人情報・マイナンバー法・守秘義務）", hours=2),
        TrainingItem(key="scheme_overview", name_ja="制度概要（キャッシュレス決済サービスを含む）", hours=2),
        TrainingItem(key="work_flow", name_ja="業務フロー", hours=2),
        TrainingItem(key="customer_service", name_ja="対面対応（接遇）", hours=1),
        TrainingItem(key="talk_script_faq", name_ja="トークスクリプト・よくある質問", hours=2),
        TrainingItem(key="role_play", name_ja="ロールプレイング", hours=2),
        TrainingItem(key="system", name_ja="システム操作", hours=1),
        TrainingItem(key="escalation", name_ja="エスカレーション対応", hours=1),
        TrainingItem(key="complaints", name_ja="苦情対応", hours=1),
        TrainingItem(key="security_policy", name_ja="情報セキュリティポリシー", hours=1),
    )
    pass_score: int = Field(default=80, ge=0, le=100)  # 理解度テストの合格点

    @model_validator(mode="after")
    def _unique(self) -> TrainingPlan:
        keys = [i.key for i in self.items]
        if len(set(keys)) != len(keys):
            raise ValueError("training item keys must be unique")
        if "test" in keys:
            raise ValueError("'test' is the training test, not an item")
        return self

    def item(self, key: str) -> TrainingItem:
        for i in self.items:
            if i.key == key:
                return i
        raise KeyError(key)

    def items_for(self, duty: str) -> tuple[TrainingItem, ...]:
        return tuple(i for i in self.items if duty in i.duties)

    def label(self, key: str) -> str:
        if key == "test":
            return f"理解度テスト（{self.pass_score}点以上で合格）"
        try:
            return self.item(key).name_ja
        except KeyError:
            return key


class Contract(_Frozen):
    """The contract period (契約履行期間): deliverables are due from it (REP-6)."""

    start: date  # 契約締結日
    end: date  # 契約履行期間の終わり
    opens: date | None = None  # the first day of operations (窓口開設日): daily reports are due from it

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError("contract end is before its start")
        if self.opens is not None and not self.start <= self.opens <= self.end:
            raise ValueError("contract opens outside the contract period")
        return self


class ReportSignature(_Frozen):
    """What every report carries for the city (issue 16): the contractor's name (受託者) and the
    approval boxes (承認欄) the city stamps, left to right."""

    contractor_ja: str = ""
    approvals: tuple[str, ...] = ("承認", "確認", "作成")


class DeskSeverity(_Frozen):
    """How the HQ dashboard ranks a desk (issue 16): a wait or a queue above these is amber / red;
    a staffing breach or an urgent alert is always red."""

    wait_amber_minutes: float = Field(default=30, gt=0)
    wait_red_minutes: float = Field(default=60, gt=0)
    queue_amber: int = Field(default=8, gt=0)
    queue_red: int = Field(default=15, gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.wait_red_minutes < self.wait_amber_minutes or self.queue_red < self.queue_amber:
            raise ValueError("desk_severity: red thresholds must not be below amber ones")
        return self


class Municipality(_Frozen):
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
    name_ja: str
    name_en: str = ""
    timezone: Literal["Asia/Tokyo"] = "Asia/Tokyo"
    regular_hours: OpeningHours = OpeningHours()
    closed_weekdays: tuple[int, ...] = (5, 6)
    year_end_closure: tuple[str, str] | None = ("12-29", "01-03")  # MM-DD, both included
    extra_holidays: tuple[date, ...] = ()
    capacity_thresholds: tuple[float, ...] = (0.8, 1.0, 1.25)  # DESK-2
    wards: tuple[Ward, ...] = Field(min_length=1)
    special_days: tuple[SpecialDayConfig, ...] = ()
    phone: PhoneLine = PhoneLine()
    equipment: tuple[EquipmentItem, ...] = ()
    contract: Contract | None = None
    report: ReportSignature = ReportSignature()
    desk_severity: DeskSeverity = DeskSeverity()
    training: TrainingPlan = TrainingPlan()  # ORG-4

    @model_validator(mode="before")
    @classmethod
    def _desk_defaults(cls, data: Any) -> Any:
        # TOML convenience: desks sit inside their ward and take [desk_defaults].
        if not is_dict(data):
            return data
        data = dict(data)
        defaults: dict[str, Any] = data.pop("desk_defaults", {}) or {}
        wards: list[Any] = []
        for ward in data.get("wards", ()):
            if is_dict(ward):
                ward = dict(ward)
                ward["desks"] = [
                    {**defaults, "ward": ward.get("id"), **d} if is_dict(d) else d for d in ward.get("desks", ())
                ]
            wards.append(ward)
        if wards:
            data["wards"] = wards
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Municipality:
        ward_ids = [w.id for w in self.wards]
        if len(set(ward_ids)) != len(ward_ids):
            raise ValueError("ward ids must be unique")
        desk_ids = [d.id for d in self.desks]
        if len(set(desk_ids)) != len(desk_ids):
            raise ValueError("desk ids must be unique")
        for ward in self.wards:
            for desk in ward.desks:
                if desk.ward != ward.id:
                    raise ValueError(f"desk {desk.id} is listed under ward {ward.id} but says {desk.ward}")
        if list(self.capacity_thresholds) != sorted(self.capacity_thresholds) or any(
            t <= 0 for t in self.capacity_thresholds
        ):
            raise ValueError("capacity_thresholds must be positive and ascending")
        keys = [e.key for e in self.equipment]
        if len(set(keys)) != len(keys):
            raise ValueError("equipment keys must be unique")
        for sd in self.special_days:
            unknown = set(sd.desks) - set(desk_ids)
            if unknown:
                raise ValueError(f"special day {sd.date} names unknown desks {sorted(unknown)}")
            sd.to_calendar()  # validates the hours
        return self

    # --- lookups ---------------------------------------------------------------------------

    def _desk_index(self) -> tuple[tuple[Desk, ...], dict[str, Desk]]:
        # Built once per wards tuple (a lookup runs on every command). Keyed on the tuple's
        # identity rather than a cached_property, which model_copy(update=...) would carry over stale.
        cached = self.__dict__.get("_desk_index_cache")
        if cached is None or cached[0] is not self.wards:
            desks = tuple(d for w in self.wards for d in w.desks)
            cached = (self.wards, desks, {d.id: d for d in desks})
            vars(self)["_desk_index_cache"] = cached
        return cached[1], cached[2]

    @property
    def desks(self) -> tuple[Desk, ...]:
        return self._desk_index()[0]

    def desk(self, desk_id: str) -> Desk:
        """The desk with this id (KeyError if none)."""
        return self._desk_index()[1][desk_id]

    def ward(self, ward_id: str) -> Ward:
        for w in self.wards:
            if w.id == ward_id:
                return w
        raise KeyError(ward_id)

    def equipment_item(self, key: str) -> EquipmentItem:
        for e in self.equipment:
            if e.key == key:
                return e
        raise KeyError(key)

    def capacity_marks(self, desk_id: str) -> list[tuple[float, int]]:
        """(threshold, visitor count that reaches it) for a desk, e.g. (0.8, 64) of 80 (DESK-2)."""
        cap = self.desk(desk_id).expected_max_visitors
        return [(t, math.ceil(round(t * cap, 6))) for t in self.capacity_thresholds]

    def calendar(
        self, special_days: tuple[SpecialDay, ...] = (), instructions: tuple[Instruction, ...] = ()
    ) -> Calendar:
        """The opening calendar from this configuration, plus overrides recorded at run time."""
        year_end = None
        if self.year_end_closure:
            (m0, d0), (m1, d1) = (tuple(int(x) for x in s.split("-")) for s in self.year_end_closure)
            year_end = ((m0, d0), (m1, d1))
        return Calendar(
            regular=Hours(self.regular_hours.open, self.regular_hours.close),
            special_days=(*(sd.to_calendar() for sd in self.special_days), *special_days),
            instructions=tuple(instructions),
            closed_weekdays=frozenset(self.closed_weekdays),
            year_end=year_end,  # type: ignore[arg-type]
            extra_holidays=frozenset(self.extra_holidays),
        )

    def phone_calendar(self) -> Calendar:
        """The phone line's calendar (CALL-1): business days, the line's own hours, no desk specials."""
        base = self.calendar()
        return Calendar(
            regular=Hours(self.phone.hours.open, self.phone.hours.close),
            closed_weekdays=base.closed_weekdays,
            year_end=base.year_end,
            extra_holidays=base.extra_holidays,
        )


class MunicipalityNotFound(FileNotFoundError):
    pass


def config_dirs(config_dir: str | Path | None = None) -> list[Path]:
    dirs: list[Path] = []
    if config_dir:
        dirs.append(Path(config_dir))
    if os.environ.get("MADOGUCHI_CONFIG_DIR"):
        dirs.append(Path(os.environ["MADOGUCHI_CONFIG_DIR"]))
    dirs.append(Path.cwd() / "config" / "municipalities")
    # shared/src/madoguchi_shared/municipality.py -> repository root
    dirs.append(Path(__file__).resolve().parents[3] / "config" / "municipalities")
    return dirs


def load_municipality(
    code_or_path: str | Path, *, config_dir: str | Path | None = None, code: str | None = None
) -> Municipality:
    """Load a municipality by 6-digit code (searched in the config folders) or by TOML path.

    `code` replaces the file's code: one file can serve as the template of another deployment
    (the tests run Sapporo's configuration under throw-away codes).
    """
    text = str(code_or_path)
    if len(text) == 6 and text.isdigit():
        for folder in config_dirs(config_dir):
            candidate = folder / f"{text}.toml"
            if candidate.is_file():
                path = candidate
                break
        else:
            raise MunicipalityNotFound(
                f"no configuration for municipality {text} in {[str(d) for d in config_dirs(config_dir)]}"
            )
    else:
        path = Path(text)
        if not path.is_file():
            raise MunicipalityNotFound(f"no such configuration file: {path}")
    with path.open("rb") as f:
        data = tomllib.load(f)
    if code is not None:
        data["code"] = code
    return Municipality.model_validate(data)
