"""`madoguchi agent ...` and the `madoguchi-agent` script (the systemd unit runs
`madoguchi-agent run --config /etc/madoguchi/agent.toml`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

# No pretty exceptions: a daemon's traceback must not print local variables (they may hold paths).
app = typer.Typer(
    help="Desk PC agent: card reader, applications, USB, files, heartbeat, offline outbox.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="The agent's TOML (or JSON) config file.", envvar="MADOGUCHI_AGENT_CONFIG"),
]


def _load(config: Path):
    from pydantic import ValidationError

    from madoguchi_agent.config import AgentConfig

    try:
        return AgentConfig.load(config)
    except OSError as exc:
        typer.echo(f"設定ファイルを読めません / cannot read the config file: {config} ({exc.strerror})", err=True)
    except (ValueError, ValidationError) as exc:
        typer.echo(f"設定ファイルの内容が正しくありません / invalid config file {config}:\n{exc}", err=True)
    raise typer.Exit(2)


@app.command()
def run(
    config: ConfigOpt,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING")] = "INFO",
    json_logs: Annotated[bool, typer.Option("--json-logs/--plain-logs")] = True,
    load_rate: Annotated[float, typer.Option(hidden=True, help="Synthetic events per second (benchmark).")] = 0.0,
    load_count: Annotated[int, typer.Option(hidden=True, help="Synthetic events in all (tests).")] = 0,
) -> None:
    """Run the agent until SIGTERM / Ctrl-C."""
    # structlog imports rich (when installed) only for pretty console tracebacks; the daemon logs
    # JSON and keeps ~5 MB of resident memory by not loading it (issue 5: RSS under 60 MB).
    if "rich" not in sys.modules and "structlog" not in sys.modules:
        sys.modules["rich"] = None  # type: ignore[assignment]
    from madoguchi_agent.agent import Agent
    from madoguchi_shared.logging import configure

    configure(log_level, json_logs=json_logs)
    agent = Agent(_load(config), load_rate=load_rate, load_count=load_count)
    asyncio.run(agent.run())


@app.command()
def notice(
    config: ConfigOpt,
    staff_id: Annotated[str, typer.Option(prompt="職員ID (staff id)")],
    yes: Annotated[bool, typer.Option("--yes", help="Acknowledged elsewhere (a GUI dialog).")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not ask the bus whether the staff id exists.")] = False,
) -> None:
    """Show the monitoring notice at a staff login and record the answer (exit 1 when declined)."""
    import re

    from madoguchi_agent.notice import notice_for, record_notice, staff_known

    cfg = _load(config)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", staff_id):
        typer.echo("職員IDの形式が正しくありません（英数字、- と _ のみ）。", err=True)
        raise typer.Exit(2)
    verified = None if offline else asyncio.run(staff_known(cfg, staff_id))
    if verified is False:
        typer.echo(f"職員ID {staff_id} は登録されていません。記録しませんでした。", err=True)
        raise typer.Exit(2)
    text, _, _ = notice_for(cfg)
    typer.echo(text)
    acknowledged = yes or typer.confirm("上記の内容を確認し、同意しますか？", default=False)
    types = record_notice(cfg, staff_id, acknowledged, verified=verified)
    typer.echo("記録しました: " + ", ".join(types))
    if not acknowledged:
        typer.echo("同意されなかったため、この端末の窓口では受付を開始できません。業務責任者に連絡してください。")
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOpt) -> None:
    """Outbox depth, refused rows and the cached policy version, as JSON."""
    from madoguchi_agent.outbox import Outbox
    from madoguchi_agent.policy import load_cache

    cfg = _load(config)
    outbox = Outbox(cfg.outbox_path, cfg.outbox_max_bytes, cfg.outbox_reserve_bytes)
    depth, size = outbox.depth()
    cached = load_cache(cfg.policy_cache_path)
    running = cfg.running_marker.exists()
    typer.echo(
        json.dumps(
            {
                "device_id": cfg.device_id,
                "outbox_depth": depth,
                "outbox_bytes": size,
                "outbox_cap_bytes": cfg.outbox_max_bytes,
                "outbox_level": outbox.level(),
                "refused_rows": outbox.dead_count(),
                "policy_version": cached.version if cached else 0,
                "running": running,
                "pid": int(cfg.running_marker.read_text() or 0) if running else None,
            },
            ensure_ascii=False,
        )
    )
    outbox.close()


@app.command("init-config")
def init_config(path: Path, force: bool = False) -> None:
    """Write an example config file to PATH (mode 0600)."""
    from madoguchi_agent.config import EXAMPLE

    if path.exists() and not force:
        typer.echo(f"{path} exists (use --force)", err=True)
        raise typer.Exit(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXAMPLE, encoding="utf-8")
    os.chmod(path, 0o600)
    typer.echo(f"wrote {path}")


def main() -> None:
    app()
