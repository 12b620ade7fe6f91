"""How long a request may wait for the database (each statement, and a pooled connection), for the time of
the request: set by the HTTP layer (madoguchi_shared.web.RequestContext from Settings.db_request_timeout),
read by madoguchi_shared.db's pool and connections. None outside a request (workers, ingest, command-line
tools), which keep the pool's own command timeout. Its own module: the HTTP layer of a service without a
database does not import asyncpg."""

from __future__ import annotations

from contextvars import ContextVar

DB_REQUEST_TIMEOUT: ContextVar[float | None] = ContextVar("db_request_timeout", default=None)
