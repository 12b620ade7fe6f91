"""`madoguchi policy show/set/unset`: the desk-PC policy as a product feature (SEC-2).

The policy of a desk role (`011002.desk`) applies to every PC of that role; a desk's own policy
(`011002.desk.chuo-1`) wins for that desk. `set` starts from the policy in force there (or the
built-in default), applies a file and/or `--set field=value` changes, validates the result,
writes it to the key-value bucket the agents watch (they apply it within a second) and appends
an admin.configuration_changed event (key `agent_policy-<role>[-<desk>]`, revision, sha256) with
the administrator's staff id: every change is on the record.

    madoguchi policy show --desk chuo-1
    madoguchi policy set --desk chuo-1 --set process_enforce=true --set 'watched_folders=[{"label":"desktop","path":"~/Desktop"}]' --by S0001
    madoguchi policy set --file policy.json --by S0001
    madoguchi policy unset --desk chuo-1 --by S0001       # the desk follows its role again
"""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="窓口PCの監視ポリシー（アプリ許可リスト、強制終了、監視フォルダ、USB）の表示と設定。",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
Desk = Annotated[str | None, typer.Option(help="one desk's own policy (default: the role's)")]
Role_ = Annotated[str, typer.Option("--role", help="desk role whose policy it is")]
Municipality = Annotated[str | None, typer.Option(help="municipality code; default from settings")]


def _connect_and(fn):
    from madoguchi_shared import bus
    from madoguchi_shared.errors import BusUnreachable
    from madoguchi_shared.settings import Settings

    settings = Settings()

    async def go():
        nc = await bus.connect_tool(settings.nats_url, name="madoguchi-policy")
        try:
            return await fn(settings, nc.jetstream())
        finally:
            await nc.drain()

    try:
        return asyncio.run(go())
    except BusUnreachable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


@app.command()
def show(
    desk: Desk = None,
    role: Role_ = "desk",
    municipality: Municipality = None,
    as_json: Annotated[bool, typer.Option("--json", help="the policy alone, as JSON")] = False,
) -> None:
    """The policy in force for a desk (or a role): version, where it comes from, every setting."""

    from madoguchi_shared import device_policy as p

    async def fn(settings, js):
        found = await p.effective(js, municipality or settings.municipality, role, desk)
        return found.loaded, found.where

    loaded, where = _connect_and(fn)
    body = loaded.policy.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(body, ensure_ascii=False, indent=1))
        return
    source = {
        "default": "組み込みの既定値（未設定）",
        "role": f"役割「{role}」のポリシー",
        "desk": f"窓口「{desk}」個別のポリシー",
    }[where]
    typer.echo(f"適用中のポリシー: {source}　版 {loaded.version}　sha256 {loaded.sha256[:12]}")
    typer.echo(json.dumps(body, ensure_ascii=False, indent=1))


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare string


@app.command("set")
def set_(
    by: Annotated[str, typer.Option("--by", help="the administrator's staff id (recorded in the admin event)")],
    desk: Desk = None,
    role: Role_ = "desk",
    municipality: Municipality = None,
    file: Annotated[Path | None, typer.Option("--file", help="a whole policy (JSON or TOML)")] = None,
    changes: Annotated[list[str], typer.Option("--set", help="field=value (value as JSON), repeatable")] = [],  # noqa: B006
) -> None:
    """Change the policy of a role or desk; the agents apply it at once. Every change is an admin event."""
    from pydantic import ValidationError

    from madoguchi_shared import device_policy as p

    if not IDENT.match(by) or (desk and not IDENT.match(desk)):
        raise typer.BadParameter("staff id / desk: letters, digits, - and _ only")
    if file is None and not changes:
        raise typer.BadParameter("nothing to change: give --file and/or --set")
    base_from_file = None
    if file is not None:
        text = file.read_text(encoding="utf-8")
        base_from_file = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    patch = {}
    for change in changes:
        field, sep, value = change.partition("=")
        if not sep or field not in p.Policy.model_fields:
            raise typer.BadParameter(
                f"unknown field or no '=': {change!r} (fields: {', '.join(p.Policy.model_fields)})"
            )
        patch[field] = _parse_value(value)

    async def fn(settings, js):
        from madoguchi_shared import bus
        from madoguchi_shared.events import Actor, Role

        m = municipality or settings.municipality
        current = await p.effective(js, m, role, desk)
        data = base_from_file if base_from_file is not None else current.loaded.policy.model_dump(mode="json")
        try:
            policy = p.Policy.model_validate({**data, **patch})
        except ValidationError as exc:
            raise typer.BadParameter(f"invalid policy:\n{exc}") from exc
        await bus.ensure_streams(js, settings.stream_replicas)
        try:
            revision = await p.change(
                js, m, role, desk, policy, Actor(id=by, role=Role.administrator), base_revision=current.own_revision
            )
        except p.PolicyConflict as exc:
            raise typer.BadParameter(
                f"the policy changed meanwhile (now revision {exc.current}); run it again"
            ) from exc
        return revision, p.policy_digest(policy)

    revision, digest = _connect_and(fn)
    typer.echo(f"ポリシーを更新しました: {p.keys('-', role, desk)[1]}　版 {revision}　sha256 {digest[:12]}")


@app.command()
def unset(
    by: Annotated[str, typer.Option("--by", help="the administrator's staff id")],
    desk: Annotated[str, typer.Option(help="the desk whose own policy is removed")],
    role: Role_ = "desk",
    municipality: Municipality = None,
) -> None:
    """Remove a desk's own policy: the desk follows its role's policy again (an admin event too)."""
    from madoguchi_shared import device_policy as p

    async def fn(settings, js):
        from madoguchi_shared import bus
        from madoguchi_shared.events import Actor, Role

        await bus.ensure_streams(js, settings.stream_replicas)
        now = await p.remove_desk(
            js, municipality or settings.municipality, role, desk, Actor(id=by, role=Role.administrator)
        )
        return None if now is None else now.version

    version = _connect_and(fn)
    if version is None:
        typer.echo(f"窓口「{desk}」個別のポリシーはありません。", err=True)
        raise typer.Exit(1)
    typer.echo(f"窓口「{desk}」個別のポリシーを削除しました（役割のポリシー 版 {version} に従います）。")
