"""Server-sent events for live screens (HQ dashboard, desk queue, calling display).

The console reads no data from the bus: a live stream re-reads the services' APIs with the user's
token every `interval` seconds, renders the page's live regions, and sends only the regions whose
HTML changed, as `event: region` with `{"id", "html"}`. The browser swaps them in (console.js).
One stream per open screen, a handful of screens per desk: a few requests a second in all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from madoguchi_shared import logging

from madoguchi_console.deps import COOKIE, read_session
from madoguchi_console.upstream import ApiError

log = logging.get_logger(__name__)

Regions = Callable[[], Awaitable[dict[str, str]]]


def _event(name: str, data: str) -> bytes:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n".encode()


def live_response(request: Request, regions: Regions, interval: float = 1.0) -> StreamingResponse:
    interval = float(getattr(request.app.state, "live_interval", interval))

    async def stream():
        sent: dict[str, str] = {}
        yield b"retry: 2000\n\n"
        idle = 0
        while not await request.is_disconnected():
            try:
                current = await regions()
            except ApiError as exc:
                if exc.status == 401:
                    # revoked (disabled, changed, logged out) or simply expired: the login page says which
                    revoked = request.cookies.get(COOKIE) and read_session(request) is None
                    yield _event(
                        "expired",
                        json.dumps({"detail": exc.detail, "reason": "revoked" if revoked else "1"}, ensure_ascii=False),
                    )
                    return
                current = {}
                log.warning("live.upstream_failed", status=exc.status)
            except Exception as exc:  # noqa: BLE001 - a live feed keeps going through a bad read
                log.warning("live.failed", error=str(exc)[:200])
                current = {}
            changed = False
            for region_id, html in current.items():
                if sent.get(region_id) != html:
                    sent[region_id] = html
                    changed = True
                    yield _event("region", json.dumps({"id": region_id, "html": html}, ensure_ascii=False))
            idle = 0 if changed else idle + 1
            if idle and idle % 15 == 0:
                yield b": keep-alive\n\n"
            await asyncio.sleep(interval)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"cache-control": "no-store", "x-accel-buffering": "no"}
    )
