"""The project's benchmark suites. Each is `async def suite(nats_server, pg, pool, ceilings, args) -> rows`."""

from __future__ import annotations

SUITES: list = []


def suite(fn):
    SUITES.append(fn)
    return fn


def selected(only: list[str]):
    return [s for s in SUITES if not only or s.__name__ in only]
