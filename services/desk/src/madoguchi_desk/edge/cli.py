"""`madoguchi edge ...`: the desk edge on a desk's laptop (services/desk/EDGE.md).

    madoguchi edge run --desk chuo-1 --device chuo-1-pc --nats-credential /etc/madoguchi/desk-edge-nats.json
    madoguchi edge run --desk chuo-1                     # beside an embedded system (make run): credential issued
    madoguchi edge status --port 8111                    # the link: online, events not yet sent, outages

Settings as every service (MADOGUCHI_*: the HQ bus URL, TLS, the municipality, the token key), plus
MADOGUCHI_EDGE_DESK / _DEVICE / _PORT / _STATE_DIR / _NATS_CREDENTIAL (the systemd unit's env file).
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Annotated, overload

import typer

from madoguchi_shared.settings import Settings

app = typer.Typer(
    help="Desk edge (窓口エッジ): the desk's commands on its laptop, through a lost link.", no_args_is_help=True
)

DEFAULT_PORT = 8111


@overload
def _env(name: str) -> str | None: ...
@overload
def _env(name: str, default: str) -> str: ...
def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"MADOGUCHI_EDGE_{name}", default)


def credential_options(path: Path) -> dict[str, str]:
    """The laptop's NATS user and password from its credential file (JSON, as `madoguchi nats credential --edge` writes it)."""
    raw = json.loads(path.read_text())
    return {"user": str(raw["user"]), "password": str(raw["password"])}


@app.command()
def run(
    desk: Annotated[
        str | None, typer.Option(help="the desk this laptop serves, e.g. chuo-1 (MADOGUCHI_EDGE_DESK)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="the laptop's device id (default <desk>-pc)")] = None,
    port: Annotated[int | None, typer.Option(help=f"HTTP port of the edge's desk API (default {DEFAULT_PORT})")] = None,
    state_dir: Annotated[Path | None, typer.Option(help="where the journal lives (default <data dir>/edge)")] = None,
    nats_credential: Annotated[
        Path | None, typer.Option(help="the edge's NATS credential file (JSON user/password)")
    ] = None,
) -> None:
    """Serve the desk API of one desk from this laptop, working offline and draining to HQ."""
    import uvicorn

    from madoguchi_desk.edge.app import EdgeConfig, create_edge_app
    from madoguchi_shared import natsauth

    settings = Settings()
    desk = desk or _env("DESK")
    if not desk:
        raise typer.BadParameter("--desk (or MADOGUCHI_EDGE_DESK) is required")
    device = device or _env("DEVICE") or f"{desk}-pc"
    port = port or int(_env("PORT", str(DEFAULT_PORT)))
    state = state_dir or Path(_env("STATE_DIR") or settings.data_dir / "edge")
    credential = nats_credential or (Path(path) if (path := _env("NATS_CREDENTIAL")) else None)
    if credential is not None:
        options = credential_options(credential)
    elif settings.nats_user:
        options = {"user": settings.nats_user, "password": settings.nats_password.get_secret_value()}
    else:  # beside an embedded system: the edge's own identity, issued in the data folder (the server reloads)
        identity = natsauth.issue_edge(settings.data_dir.resolve(), device, settings.municipality, desk)
        options = identity.connect_options()
    kwargs = {}
    if settings.extra.get("clock"):
        from madoguchi_shared.clock import clock_from_spec

        kwargs["clock"] = clock_from_spec(settings.extra["clock"])  # a simulated day (make demo)
    config = EdgeConfig(
        desk=desk, device_id=device, state_dir=state, nats_url=settings.nats_url, connect_options=options
    )
    uvicorn.run(
        create_edge_app(settings, config, **kwargs),
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=False,
    )


@app.command()
def status(port: Annotated[int, typer.Option(help="the edge's HTTP port")] = DEFAULT_PORT) -> None:
    """Print the edge's link state: online, events not yet sent, the last outages."""
    settings = Settings()
    try:
        with urllib.request.urlopen(f"http://{settings.host}:{port}/v1/edge", timeout=3) as resp:
            state = json.loads(resp.read())
    except OSError as exc:
        typer.echo(f"error: no desk edge on port {port}: {exc}", err=True)
        raise SystemExit(2) from None
    typer.echo(f"{state['desk']} ({state['device']}): {state['label_ja']}  sent {state['sent']}")
    for o in state.get("outages", []):
        typer.echo(
            f"  offline since {o['offline_since']}: {o['commands']} commands, {o['queued']} events queued, "
            f"{o['offline_seconds']} s offline, converged {o['seconds_to_converge']} s after reconnect"
        )
