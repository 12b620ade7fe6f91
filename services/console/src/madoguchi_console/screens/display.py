"""Calling display (issue 8 §6; DESK-3): a full-screen page per desk with the numbers being
called and how many are waiting, readable across a room, updated live over SSE.

It is opened on the desk's second screen by a logged-in staff member (the desk service only
serves queue data to staff); citizens see numbers only, never anything about a person."""

from __future__ import annotations

from fastapi import APIRouter, Request

from madoguchi_console.deps import Api, CurrentSession, upstream_for
from madoguchi_console.live import live_response
from madoguchi_console.views import fragment, render

router = APIRouter(include_in_schema=False)


def display_view(status: dict) -> dict:
    queue = status.get("queue") or {}
    called = list(queue.get("called") or [])
    # The most recently called number is the big one (called tickets come in calling order).
    now = called[-1] if called else None
    recent = [n for n in (queue.get("recent_calls") or []) if not now or n != now["ticket_no"]]
    # While a number is called someone is at the desk: no 「席を外しています」 under 「お越しください」.
    absent = bool(status.get("absent")) and not status.get("on_duty") and now is None
    return {
        "status": status,
        "now": now,
        "earlier": recent[:5],
        "waiting": len(queue.get("waiting") or []),
        "absent": absent,
        "open": status.get("open_now") and status.get("day_status") not in ("halted", "cannot_start", "ended"),
    }


@router.get("/display/{desk_id}")
async def display(request: Request, desk_id: str, session: CurrentSession, api: Api):
    """The calling display of one desk."""
    status = await api.get("desk", f"/v1/desks/{desk_id}/status")
    return render(request, "display.html", desk_id=desk_id, live_url=f"/display/{desk_id}/live", **display_view(status))


@router.get("/display/{desk_id}/live")
async def display_live(request: Request, desk_id: str, session: CurrentSession):
    api = upstream_for(request, session)

    async def regions() -> dict[str, str]:
        status = await api.get("desk", f"/v1/desks/{desk_id}/status")
        return {"display": fragment(request, "display/_board.html", **display_view(status))}

    return live_response(request, regions)
