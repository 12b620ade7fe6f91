"""Domain errors: a refusal the user can act on. Pure (no web import), so decide() functions raise
them; the web layer (madoguchi_shared.web) turns them into RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

TITLES = {
    400: "要求が正しくありません",
    403: "権限がありません",
    404: "見つかりません",
    409: "現在の状態では実行できません",
    410: "既に消去されています",
    422: "入力内容に誤りがあります",
}


class DomainError(Exception):
    """`detail` is Japanese, for the person at the desk or the phone; `field` names the input concerned;
    `extra` goes into the problem document as it is (e.g. a machine-readable `code`)."""

    status = 400
    title: str | None = None

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        field: str | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.title = title or type(self).title or TITLES.get(self.status, "要求を処理できません")
        self.field = field
        self.extra = extra


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409
    title = "競合が発生しました"


class BusUnreachable(ConnectionError):
    """No NATS server answered the first connect within the time allowed (a command-line tool)."""


class Unavailable(DomainError):
    """A part the command needs (the bus, the database) is down for a moment: HTTP 503 with
    Retry-After. Nothing was stored; the same command may be sent again after `retry_after` seconds."""

    status = 503
    title = "一時的に利用できません"

    def __init__(self, detail: str | None = None, *, part: str = "bus", retry_after: int = 5, **extra: Any):
        super().__init__(detail or UNAVAILABLE_DETAIL[part], part=part, **extra)
        self.retry_after = retry_after


UNAVAILABLE_DETAIL = {
    "bus": "システムの通信基盤（メッセージバス）に一時的に接続できません。操作は記録されていません。しばらくしてからもう一度お試しください。",
    "database": "システムのデータベースに一時的に接続できません。しばらくしてからもう一度お試しください。",
    "connection": "システムの一部に一時的に接続できません。しばらくしてからもう一度お試しください。",
}
