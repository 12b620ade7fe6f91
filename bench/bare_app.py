"""The ceiling for the desk API benchmark: a bare FastAPI endpoint taking the same body, validated
by pydantic, under the same server settings (uvicorn, 1 worker, uvloop + httptools), with no bus."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    note: str | None = None


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/bare/{desk}/tickets")
    async def issue(desk: str, body: Body) -> dict:
        return {"desk": desk, "ticket": 1, "events": [{"type": "desk.ticket_issued"}]}

    return app
