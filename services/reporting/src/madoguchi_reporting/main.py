"""The reporting service: statistics projections, reports (JSON, xlsx, PDF, CSV), deliverables."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from madoguchi_shared.projection import install_health
from madoguchi_shared.settings import Settings
from madoguchi_shared.web import create_service_app

from madoguchi_reporting import api
from madoguchi_reporting.worker import Worker


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = Worker(settings, app.state.nc, app.state.pool)
        app.state.reporting = worker
        await worker.start()
        try:
            yield
        finally:
            await worker.stop()

    app = create_service_app(
        "reporting",
        settings,
        routers=api.routers(),
        lifespan=lifespan,
        use_db=True,
        description="Exact statistics and the daily, weekly and final reports (REP-1 … REP-6).",
    )
    install_health(app, lambda: app.state.reporting.projections if hasattr(app.state, "reporting") else [])
    return app


def run() -> None:
    import uvicorn

    settings = Settings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.reporting_port, log_level="warning")


if __name__ == "__main__":
    run()
