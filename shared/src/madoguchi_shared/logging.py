"""structlog JSON logs with request and correlation ids bound through contextvars.

Log lines carry ids and types, never personal data (ARCHITECTURE.md rule 5): log the event type
and the aggregate id, not free text.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog


def _may_hold_personal_data(value: str) -> bool:
    """A cheap look first (a request line's route and method pass in a microsecond): writing in Japanese, five
    digits or more, an @ or an "at"."""
    if len(value) < 7:
        return False
    if not value.isascii() or "@" in value or " at " in value:
        return True
    return _FIVE_DIGITS.match(value) is not None and not _MACHINE.fullmatch(value)


# set by this module (TimeStamper, add_log_level) and web.py (ids bound per request): never writing
_SAFE_KEYS = frozenset({"timestamp", "level", "request_id", "correlation_id", "method", "status", "ms"})
_FIVE_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){5}")
# ids, hashes and timestamps every line carries (request and correlation ids, the time): not writing
_MACHINE = re.compile(r"[0-9a-fA-F-]{16,72}|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{8,18}(?:Z|[+-][0-9:]{4,5})?")


def redacted(value: str) -> str:
    """``value`` with every span the PII guard flags replaced by [redacted]."""
    from madoguchi_shared.pii import find_personal_data

    for _ in range(3):
        findings = find_personal_data(value)
        if not findings:
            return value
        for f in reversed(findings):
            value = value[: f.start] + "[redacted]" + value[f.end :]
    return "[redacted]"


def screen_personal_data(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor, the last before rendering: a log line never carries personal data (ARCHITECTURE rule
    5), even where a value was not meant to hold any: an exception's text naming a file (PermissionError: … '/home/…
    /山田太郎_090-1234-5678.pdf'), a validation error quoting its input, a reason from a device."""
    for key, value in event_dict.items():
        if key not in _SAFE_KEYS and isinstance(value, str) and _may_hold_personal_data(value):
            event_dict[key] = redacted(value)
    return event_dict


class _ScreenRecords(logging.Filter):
    """The same for the standard library's records (uvicorn, asyncio, nats): message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        if _may_hold_personal_data(message):
            clean = redacted(message)
            if clean != message:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redacted(logging.Formatter().formatException(record.exc_info))
        return True


def configure(level: str = "INFO", json_logs: bool = True) -> None:
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        screen_personal_data,
    ]
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ScreenRecords) for f in handler.filters):
            handler.addFilter(_ScreenRecords())


class _Logger:
    """structlog's lazy logger, built once per configuration: with cache_logger_on_first_use off (so
    that a later configure(), e.g. a test capturing the lines, takes effect) structlog's proxy builds
    a new logger for every line, also for a line its level drops; a request logs two or three."""

    __slots__ = ("_proxy", "_config", "_logger")

    def __init__(self, name: str | None) -> None:
        self._proxy: Any = structlog.get_logger(name)
        self._config: tuple[Any, ...] = ()
        self._logger: Any = None

    def _current(self) -> Any:
        c = structlog.get_config()
        config = self._config
        if (
            not config
            or c["wrapper_class"] is not config[0]
            or c["logger_factory"] is not config[1]
            or c["processors"] is not config[2]
            or c["context_class"] is not config[3]
        ):
            self._config = (c["wrapper_class"], c["logger_factory"], c["processors"], c["context_class"])
            self._logger = self._proxy.bind()
        return self._logger

    # The levels as methods of their own: reached through __getattr__ each call first failed the normal
    # lookup (an AttributeError raised and caught), 4 of the 8 us a line its level drops cost (issue 19).
    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._current().debug(event, *args, **kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._current().info(event, *args, **kw)

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._current().warning(event, *args, **kw)

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._current().error(event, *args, **kw)

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._current().exception(event, *args, **kw)

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        return self._current().critical(event, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


def get_logger(name: str | None = None) -> Any:
    return _Logger(name)


bind = structlog.contextvars.bind_contextvars
clear = structlog.contextvars.clear_contextvars
