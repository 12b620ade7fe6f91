"""Rendering: one Jinja2 environment, the layout's context (who is logged in, the navigation),
and filters that show times in Japan time and dates in Japanese."""

from __future__ import annotations

import hashlib
import re
import uuid

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup, escape

from madoguchi_shared import wareki

from madoguchi_console import permissions
from madoguchi_console import domain
from madoguchi_console.deps import read_session

JST = ZoneInfo("Asia/Tokyo")
HERE = Path(__file__).parent


def _parse(value: Any) -> datetime | date | None:
    if value in (None, ""):
        return None
    if isinstance(value, (datetime, date)):
        return value
    text = str(value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None


def jst_time(value: Any) -> str:
    """ISO timestamp → '09:05' in Japan time."""
    parsed = _parse(value)
    if isinstance(parsed, datetime):
        if parsed.tzinfo:
            parsed = parsed.astimezone(JST)
        return parsed.strftime("%H:%M")
    return str(value or "")


def jst_datetime(value: Any) -> str:
    """ISO timestamp → '令和3年4月2日（金）12:00' in Japan time (no seconds)."""
    parsed = _parse(value)
    if isinstance(parsed, datetime):
        if parsed.tzinfo:
            parsed = parsed.astimezone(JST)
        return f"{ja_date(parsed.date())}{parsed.strftime('%H:%M')}"
    return ja_date(value) if isinstance(parsed, date) else str(value or "")


def jst_seconds(value: Any) -> str:
    """For the audit record page, where the second matters: '令和3年4月2日（金）12:00:05'."""
    parsed = _parse(value)
    if isinstance(parsed, datetime):
        if parsed.tzinfo:
            parsed = parsed.astimezone(JST)
        return f"{ja_date(parsed.date())}{parsed.strftime('%H:%M:%S')}"
    return str(value or "")


def phone_number(value: Any) -> str:
    """'0111234567' → '011-123-4567' (Japanese grouping for the common lengths)."""
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    if len(digits) == 11:
        return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    if len(digits) == 10:
        if digits.startswith(("03", "06")):
            return f"{digits[:2]}-{digits[2:6]}-{digits[6:]}"
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return str(value or "")


def ja_date(value: Any) -> str:
    """'2021-04-01' → '令和3年4月1日（木）'."""
    parsed = _parse(value)
    if parsed is None:
        return str(value or "")
    try:
        return wareki.to_wareki(parsed, weekday=True)
    except Exception:  # noqa: BLE001 - dates outside the eras table shown as given
        return str(value)


def minutes(value: Any) -> str:
    """Seconds → '12分' (waiting times)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{int(seconds // 60)}分"


class Names:
    """Japanese names of wards and desks from the municipality's configuration (ids otherwise)."""

    def __init__(self, municipality=None):
        self.wards: dict[str, str] = {}
        self.desks: dict[str, str] = {}
        if municipality is not None:
            for w in municipality.wards:
                self.wards[w.id] = w.name_ja
                for d in w.desks:
                    # One desk in a ward: the ward's name says it; several: the desk's own name.
                    self.desks[d.id] = w.name_ja if len(w.desks) == 1 else d.name_ja

    def ward(self, ward_id: Any) -> str:
        return self.wards.get(str(ward_id), str(ward_id or ""))

    def desk(self, desk_id: Any) -> str:
        return self.desks.get(str(desk_id), str(desk_id or ""))

    def named(self, text: Any) -> Markup:
        """A service's Japanese message with the desk ids in it replaced by the desks' names; what is
        left in Latin letters is a value a person typed or a program reported (a staff id, a program's
        name), marked as such like every id on the screens."""
        out = str(text or "").replace("回線 main ", "回線").replace("回線 main", "回線")
        for desk_id in sorted(self.desks, key=len, reverse=True):
            if desk_id in out:
                out = out.replace(f"{desk_id}: ", f"{self.desks[desk_id]}：").replace(desk_id, self.desks[desk_id])
        parts, last = [], 0
        for m in _LATIN_VALUE.finditer(out):
            if m.group(0) in _JAPANESE_ABBREVIATIONS:
                continue
            parts += [escape(out[last : m.start()]), Markup('<span class="id">%s</span>') % m.group(0)]
            last = m.end()
        parts.append(escape(out[last:]))
        return Markup("").join(parts)


# Latin abbreviations that are how Japanese writes these things (職員ID, USB機器, PDF): words, not values.
_JAPANESE_ABBREVIATIONS = frozenset({"ID", "PC", "QR", "NFC", "USB", "PDF", "CSV", "ZIP", "Excel"})
# A run of id characters with at least one Latin letter in it (S-dec, game.exe, C:/tmp, 0781:5567a).
_LATIN_VALUE = re.compile(r"[A-Za-z0-9_.:/\\@+-]*[A-Za-z][A-Za-z0-9_.:/\\@+-]*")


NAMES = Names()


_COMMAND_SALT = uuid.uuid4().bytes


@pass_context
def command_id(context, *parts: Any) -> str:
    """A desk form's client command id (services/desk/EDGE.md): the same for the same person, desk,
    form and state the form was rendered at, so a form sent twice is one command, and a re-render
    of an unchanged screen is the same HTML (the live regions replace only what changed)."""
    session = context.get("session")
    status = context.get("status") or {}
    seed = repr(
        (
            getattr(getattr(session, "principal", None), "staff_id", None),
            status.get("desk"),
            status.get("version"),
            parts,
        )
    ).encode()
    return hashlib.sha256(_COMMAND_SALT + seed).hexdigest()[:32]


def make_templates(municipality=None) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    names = Names(municipality)
    NAMES.wards.update(names.wards)
    NAMES.desks.update(names.desks)
    env.filters.update(
        jst_time=jst_time,
        jst_datetime=jst_datetime,
        jst_seconds=jst_seconds,
        ja_date=ja_date,
        minutes=minutes,
        phone_number=phone_number,
        ward_name=names.ward,
        desk_name=names.desk,
        named=names.named,
    )
    env.globals.update(
        role_label=permissions.role_label,
        ROLE_LABELS=permissions.ROLE_LABELS,
        label=domain.label,
        L=domain,
        names=names,
        command_id=command_id,
    )
    return templates


FLASH_COOKIE = "mg_flash"


def set_flash(response, text: str) -> None:
    """A one-time message for the page after a redirect (post/redirect/get)."""
    response.set_cookie(FLASH_COOKIE, quote(text), max_age=60, path="/", httponly=True, samesite="strict")


def render(request: Request, template: str, status_code: int = 200, **context: Any):
    session = read_session(request)
    flash = context.pop("flash", None)
    pending = request.cookies.get(FLASH_COOKIE)
    if pending and flash is None and request.method == "GET":
        flash = unquote(pending)
    base = {
        "request": request,
        "session": session,
        "principal": session.principal if session else None,
        "nav": permissions.nav_items(session.roles) if session else [],
        "active": context.pop("active", None),
        "errors": context.pop("errors", None) or {},
        "form_error": context.pop("form_error", None),
        "values": context.pop("values", None) or {},
        "flash": flash,
    }
    base.update(context)
    response = request.app.state.templates.TemplateResponse(request, template, base, status_code=status_code)
    if pending and request.method == "GET":
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def fragment(request: Request, template: str, **context: Any) -> str:
    """A partial template rendered to a string (live regions, search results)."""
    return request.app.state.templates.get_template(template).render(request=request, **context)
