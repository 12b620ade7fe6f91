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
        config = (c["wrapper_class"], c["logger_factory"], c["processors"], c["context_class"])
        if len(config) != len(self._config) or any(a is not b for a, b in zip(config, self._config, strict=True)):
            self._logger, self._config = self._proxy.bind(), config
        return self._logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._current(), name)


def get_logger(name: str | None = None) -> Any:
    return _Logger(name)


bind = structlog.contextvars.bind_contextvars
clear = structlog.contextvars.clear_contextvars
