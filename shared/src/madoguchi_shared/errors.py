"""Domain errors: a refusal the user can act on. Pure (no web import), so decide() functions raise
them; the web layer (madoguchi_shared.web) turns them into RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A refusal the user can act on. `detail` is Japanese, for the person at the desk or the phone;
    `field` names the input concerned; `code` is a machine-readable reason (e.g. "day_ended"); `extra`
    goes into the problem document as it is. The kind of refusal is the class: no HTTP status here
    (madoguchi_shared.web maps each class to one)."""

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None, **extra: Any) -> None:
        if "status" in extra or "title" in extra:
            raise TypeError("a domain error names no HTTP status or title: its class does (madoguchi_shared.web)")
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.code = code
        self.extra = extra


class Refused(DomainError):
    """The current state does not allow the command (the day has ended, the call is not answered)."""


class Invalid(DomainError):
    """The input breaks a rule of the domain (a period the wrong way round, an unknown category)."""


class Forbidden(DomainError):
    """A rule about who may act (untrained staff, another operator's call, an administrator's account)."""


class NotFound(DomainError):
    """Nothing by that reference exists (or the reader may not see it)."""


class Conflict(DomainError):
    """Someone else changed or created it first."""


class Gone(DomainError):
    """It existed and has been erased (a phone number past its retention)."""


class BusUnreachable(ConnectionError):
    """No NATS server answered the first connect within the time allowed (a command-line tool)."""


class Unavailable(DomainError):
    """A part the command needs (the bus, the database, HQ seen from a desk's edge) is out of reach for
    a moment. Nothing was stored; the same command may be sent again after `retry_after` seconds."""

    def __init__(
        self,
        detail: str | None = None,
        *,
        part: str | None = "bus",
        retry_after: int = 5,
        code: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or UNAVAILABLE_DETAIL[part or "connection"], code=code, part=part, **extra)
        self.retry_after = retry_after


UNAVAILABLE_DETAIL = {
    "bus": "システムの通信基盤（メッセージバス）に一時的に接続できません。操作は記録されていません。しばらくしてからもう一度お試しください。",
    "database": "システムのデータベースに一時的に接続できません。しばらくしてからもう一度お試しください。",
    "connection": "システムの一部に一時的に接続できません。しばらくしてからもう一度お試しください。",
}
