"""Reading HTML forms (application/x-www-form-urlencoded) without python-multipart, and turning
what was typed into API bodies. The submitted values are kept so a refused form is shown again
with everything the user typed (issue 8: nothing typed is lost on an error)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request


class FormValues(dict):
    """First value per name (for templates) plus every value (`getlist`) for checkboxes."""

    def __init__(self, pairs: list[tuple[str, str]]):
        super().__init__()
        self._all: dict[str, list[str]] = {}
        for key, value in pairs:
            self._all.setdefault(key, []).append(value)
            self.setdefault(key, value)

    def getlist(self, key: str) -> list[str]:
        return list(self._all.get(key, []))

    def text(self, key: str) -> str | None:
        value = (self.get(key) or "").strip()
        return value or None

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = (self.get(key) or "").strip()
        try:
            return int(value)
        except ValueError:
            return default

    def flag(self, key: str) -> bool:
        return self.get(key) in ("1", "on", "true", "yes")


async def read_form(request: Request) -> FormValues:
    body = (await request.body()).decode("utf-8", errors="replace")
    return FormValues(parse_qsl(body, keep_blank_values=True))
