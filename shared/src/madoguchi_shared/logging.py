"""structlog JSON logs with request and correlation ids bound through contextvars.

Log lines carry ids and types, never personal data (ARCHITECTURE.md rule 5): log the event type
and the aggregate id, not free text.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


def configure(level: str = "INFO", json_logs: bool = True) -> None:
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer(ensure_ascii=False) if json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")


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
