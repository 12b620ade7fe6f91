"""`madoguchi calls ...`: commands of the calls service.

madoguchi calls faq-seed [--municipality 011002]   # the starter Q&A, once (idempotent)
madoguchi calls faq-search マイキー                   # what an operator would find
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from madoguchi_shared.settings import Settings

app = typer.Typer(help="The phone line (電話対応): Q&A and maintenance.", no_args_is_help=True)


async def _seed(settings: Settings, municipality: str) -> tuple[int, int]:
    from madoguchi_calls.faq import SEED
    from madoguchi_calls.service import CallsService
    from madoguchi_shared import bus
    from madoguchi_shared.events import Actor, Role

    nc = await bus.connect_tool(settings.nats_url, name="madoguchi-calls-cli")
    try:
        await bus.ensure_streams(nc.jetstream(), settings.stream_replicas)
        service = CallsService(settings, nc, store=None)
        view = await service.view(municipality)
        existing = {e.question for e in view.faq.entries.values()}
        actor = Actor(id="faq-seed", role=Role.system)
        created = skipped = 0
        for item in SEED:
            if item["question"] in existing:
                skipped += 1
                continue
            await service.create_faq(
                municipality,
                actor,
                question=item["question"],
                answer=item["answer"],
                categories=item["categories"],
                keywords=item["keywords"],
            )
            created += 1
        await service.views.close()
        return created, skipped
    finally:
        await nc.drain()


@app.command("faq-seed")
def faq_seed(
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
) -> None:
    """Add the starter Q&A entries (電話対応Q&A) that are not there yet."""
    settings = Settings()
    created, skipped = asyncio.run(_seed(settings, municipality or settings.municipality))
    typer.echo(f"FAQ: {created} entries created, {skipped} already present")


@app.command("faq-search")
def faq_search(
    query: str,
    municipality: Annotated[str | None, typer.Option(help="municipality code; default from settings")] = None,
) -> None:
    """Search the Q&A as an operator would."""
    from madoguchi_calls.live import LineView
    from madoguchi_shared import bus

    settings = Settings()

    async def go() -> None:
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-calls-cli")
        try:
            view = LineView(municipality or settings.municipality)
            await view.start(nc)
            for hit in view.faq.search(query):
                typer.echo(f"[{hit.score}] {hit.entry.question}\n    {hit.entry.answer}")
            await view.stop()
        finally:
            await nc.drain()

    asyncio.run(go())
