"""What reporting needs to know beyond the events: the municipality's configuration (wards, desks,
names, calendar), the city's run-time calendar changes, and the contract period (REP-6).

The contract period comes from the municipality configuration when it has a ``contract`` section
(``start``/``end``), else from settings: ``MADOGUCHI_EXTRA='{"contract_start": "2021-03-15",
"contract_end": "2021-09-30"}'`` (optionally ``contract_start.<code>`` per municipality).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

from madoguchi_shared import db
from madoguchi_shared.calendar import Calendar
from madoguchi_shared.city_calendar import fold_calendar
from madoguchi_shared.events import parse_event
from madoguchi_shared.municipality import Municipality, MunicipalityNotFound, load_municipality
from madoguchi_shared.settings import Settings

from madoguchi_reporting.schema import SCHEMA


@dataclass(frozen=True)
class Contract:
    start: dt.date
    end: dt.date
    opens: dt.date | None = None  # the first day of operations: daily and weekly reports are due from it

    @property
    def first_day(self) -> dt.date:
        return self.opens or self.start


class ReportConfig:
    """Per-municipality configuration, loaded once per code."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._cache: dict[str, Municipality] = {}

    @cached_property
    def _template(self) -> str:
        return str(self.settings.config_file) if self.settings.config_file else self.settings.municipality

    def municipality(self, code: str) -> Municipality:
        """The configuration of `code`; an unknown code runs on the deployment's own file (tests use
        throw-away codes with Sapporo's configuration)."""
        if code not in self._cache:
            try:
                self._cache[code] = load_municipality(code)
            except MunicipalityNotFound:
                self._cache[code] = load_municipality(self._template, code=code)
        return self._cache[code]

    def ward_of(self, code: str, desk: str) -> str | None:
        try:
            return self.municipality(code).desk(desk).ward
        except KeyError:
            return None

    def ward_name(self, code: str, ward: str) -> str:
        try:
            return self.municipality(code).ward(ward).name_ja
        except KeyError:
            return ward

    def desk_name(self, code: str, desk: str) -> str:
        try:
            return self.municipality(code).desk(desk).name_ja
        except KeyError:
            return desk

    def contract(self, code: str) -> Contract | None:
        section = getattr(self.municipality(code), "contract", None)
        if section is not None and getattr(section, "start", None) and getattr(section, "end", None):
            return Contract(section.start, section.end, getattr(section, "opens", None))
        extra = self.settings.extra
        start = extra.get(f"contract_start.{code}") or extra.get("contract_start")
        end = extra.get(f"contract_end.{code}") or extra.get("contract_end")
        opens = extra.get(f"contract_opens.{code}") or extra.get("contract_opens")
        if start and end:
            return Contract(
                dt.date.fromisoformat(start),
                dt.date.fromisoformat(end),
                dt.date.fromisoformat(opens) if opens else None,
            )
        return None

    async def calendar(self, conn: db.Connection, code: str) -> Calendar:
        """The desks' calendar: configuration plus the city's run-time changes (DESK-1)."""
        rows = await conn.fetch(
            f'SELECT event FROM "{SCHEMA}".calendar_override WHERE municipality = $1 ORDER BY seq', code
        )
        city = fold_calendar([parse_event(r["event"]) for r in rows])
        return city.calendar(self.municipality(code))

    def phone_calendar(self, code: str) -> Calendar:
        return self.municipality(code).phone_calendar()
