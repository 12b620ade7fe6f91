"""The desk-PC policy screen for the manager and the administrator (issue 17 §2; SEC-2): the policy
in force per desk role and per desk (where it comes from, its version, the kept revisions), and a
form to change the application allow-list, enforcement, watched folders and USB classes.

Like the staff screens, the console does this in its own process over the bus with the shared
policy code (madoguchi_shared.device_policy): the key-value bucket the agents watch, and an
admin.configuration_changed event naming the staff id for every change. A change names the revision
it was made from: when someone else changed the policy meanwhile, the form comes back with a
conflict instead of overwriting. Paths and program names are free text: the personal-data guard
refuses My Numbers, phone numbers and e-mail addresses in them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from madoguchi_shared import device_policy as p
from madoguchi_shared.pii import find_personal_data
from madoguchi_shared.web import correlation_id

from madoguchi_console.deps import Api, PolicySession, Session
from madoguchi_console.forms import FormValues, read_form
from madoguchi_console.upstream import ApiError
from madoguchi_console.views import render, set_flash

router = APIRouter(include_in_schema=False)
ROLE = "desk"  # the desk role of the desk PCs (AgentConfig.role)
IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
VIDPID = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$")
USB_CLASSES = (
    ("01", "オーディオ"),
    ("02", "通信（モバイルルーター等）"),
    ("03", "キーボード・マウス"),
    ("06", "画像（スマートフォン・カメラ）"),
    ("07", "プリンター"),
    ("09", "ハブ"),
    ("0a", "通信データ"),
    ("0b", "カード読取機（マイナンバーカード等）"),
    ("0e", "ビデオ（カメラ）"),
    ("e0", "無線（ブルートゥース等）"),
    ("ef", "その他（複合機器）"),
    ("ff", "メーカー独自"),
)
SOURCES = {
    "default": "組み込みの既定値（まだ設定されていません）",
    "role": "窓口共通のポリシー",
    "desk": "この窓口個別のポリシー",
}
PII_FIELD = "個人情報と思われる内容（個人番号・電話番号・メールアドレス）が含まれているため保存しませんでした。該当する行を削除してください。"


def _desks(request: Request, session: Session) -> list[tuple[str, str]]:
    m = getattr(request.app.state, "municipality", None)
    if m is None:
        return []
    out = []
    for w in m.wards:
        if session.principal.wards and w.id not in session.principal.wards:
            continue
        for d in w.desks:
            out.append((d.id, w.name_ja if len(w.desks) == 1 else d.name_ja))
    return out


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def allow_text(rules) -> str:
    """One allowed program per line: a path (glob) starting with "/", a sha256, and/or a name."""
    return "\n".join(" ".join(v for v in (r.path, r.name, r.sha256) if v) for r in rules)


def folders_text(folders) -> str:
    return "\n".join(f"{f.label} {f.path}" for f in folders)


def form_values(policy: p.Policy) -> dict[str, Any]:
    return {
        "enforce": "stop" if policy.process_enforce else "report",
        "allow": allow_text(policy.allow),
        "folders": folders_text(policy.watched_folders),
        "quarantine": policy.quarantine,
        "block_storage": policy.usb_block_mass_storage,
        "block_other": policy.usb_block_not_allowed,
        "classes": list(policy.usb_allowed_classes),
        "devices": "\n".join(policy.usb_allowed_devices),
        "card_left_minutes": f"{policy.card_left_s / 60:g}",
    }


def parse_form(form: FormValues, current: p.Policy) -> tuple[p.Policy | None, dict[str, str], dict[str, Any]]:
    """The policy the form asks for (fields the form does not show keep their current values),
    or the Japanese error of each field. Pure: no I/O."""
    values = {
        "enforce": form.get("enforce", ""),
        "allow": form.get("allow", ""),
        "folders": form.get("folders", ""),
        "quarantine": form.flag("quarantine"),
        "block_storage": form.flag("block_storage"),
        "block_other": form.flag("block_other"),
        "classes": form.getlist("classes"),
        "devices": form.get("devices", ""),
        "card_left_minutes": form.get("card_left_minutes", "").strip(),
    }
    errors: dict[str, str] = {}
    for field in ("allow", "folders", "devices"):
        if find_personal_data(values[field]):
            errors[field] = PII_FIELD
    if values["enforce"] not in ("stop", "report"):
        errors["enforce"] = "許可されていないアプリケーションの扱いを選んでください。"
    rules = []
    if "allow" not in errors:
        for n, line in enumerate(_lines(values["allow"]), 1):
            rule: dict[str, str] = {}
            for token in line.split():
                kind = (
                    "sha256"
                    if HEX64.match(token)
                    else "path"
                    if token.startswith(("/", "~", "*")) or "\\" in token
                    else "name"
                )
                if kind in rule:
                    errors["allow"] = (
                        f"{n} 行目: 1行に書けるのはパス・プログラム名・ハッシュ値を各1つまでです（パスに空白があるときは「*」で置き換えてください）。"
                    )
                    break
                rule[kind] = token.lower() if kind == "sha256" else token
            if "allow" in errors:
                break
            rules.append(p.AllowRule(**rule))
        if not rules and "allow" not in errors:
            errors["allow"] = (
                "許可するアプリケーションを1つ以上入力してください（空にすると、すべてのプログラムが止められます）。"
            )
    folders = []
    if "folders" not in errors:
        for n, line in enumerate(_lines(values["folders"]), 1):
            label, _, path = line.partition(" ")
            path = path.strip()
            if not IDENT.match(label) or not path:
                errors["folders"] = (
                    f"{n} 行目: 「名前 パス」の形で入力してください（名前は半角英数字と - _、例: desktop ~/Desktop）。"
                )
                break
            if not path.startswith(("/", "~/")) and not re.match(r"^[A-Za-z]:\\", path):
                errors["folders"] = f"{n} 行目: パスは「/」か「~/」で始まる絶対パスで入力してください。"
                break
            folders.append(p.WatchedFolder(label=label, path=path))
        if len({f.label for f in folders}) != len(folders) and "folders" not in errors:
            errors["folders"] = "同じ名前のフォルダが複数あります。名前は1つずつ変えてください。"
    classes = [c for c in values["classes"] if c in dict(USB_CLASSES)]
    if len(classes) != len(values["classes"]):
        errors["classes"] = "USB機器の種類の選択が正しくありません。"
    devices = [d.lower() for d in _lines(values["devices"])]
    if "devices" not in errors and any(not VIDPID.match(d) for d in devices):
        errors["devices"] = "機器は「ベンダーID:製品ID」（16進数4桁ずつ、例 054c:06c1）で1行に1つ入力してください。"
    try:
        minutes = float(values["card_left_minutes"])
        if not 0 < minutes <= 24 * 60:
            raise ValueError
    except ValueError:
        errors["card_left_minutes"] = "カード置き忘れの警報までの時間を、1日以内の分数で入力してください。"
        minutes = current.card_left_s / 60
    if errors:
        return None, errors, values
    try:
        policy = p.Policy.model_validate(
            {
                **current.model_dump(mode="json"),
                "process_enforce": values["enforce"] == "stop",
                "allow": [r.model_dump(exclude_none=True) for r in rules],
                "watched_folders": [f.model_dump() for f in folders],
                "quarantine": values["quarantine"],
                "usb_block_mass_storage": values["block_storage"],
                "usb_block_not_allowed": values["block_other"],
                "usb_allowed_classes": classes,
                "usb_allowed_devices": devices,
                "card_left_s": minutes * 60,
            }
        )
    except ValidationError:
        return None, {}, values
    return policy, {}, values


def _desk_param(request: Request, session: Session, desk: str | None) -> str | None:
    """The desk whose policy is shown (None = the policy common to every desk); only known desks."""
    if not desk:
        return None
    if desk not in dict(_desks(request, session)):
        return ""
    return desk


async def _page(request: Request, session: Session, desk: str | None, status_code: int = 200, **extra):
    js = request.app.state.js
    m = session.principal.municipality
    found = await p.effective(js, m, ROLE, desk)
    revisions = await p.history(js, m, ROLE, desk)
    role_found = await p.effective(js, m, ROLE, None) if desk else found
    values = extra.pop("values", None) or form_values(found.loaded.policy)
    desks = _desks(request, session)
    # every desk at a glance: whose policy is in force there and its version
    in_force = await asyncio.gather(*(p.effective(js, m, ROLE, d) for d, _ in desks))
    overview = [
        {
            "desk": d,
            "name": name,
            "where": e.where,
            "version": e.loaded.version,
            "enforce": e.loaded.policy.process_enforce,
            "folders": len(e.loaded.policy.watched_folders),
        }
        for (d, name), e in zip(desks, in_force, strict=True)
    ]
    return render(
        request,
        "policy.html",
        status_code,
        active="policy",
        desk=desk,
        desks=desks,
        overview=overview,
        found=found,
        role_found=role_found,
        revisions=revisions,
        sources=SOURCES,
        usb_classes=USB_CLASSES,
        may_edit_common=not session.principal.wards,
        values=values,
        base_revision=extra.pop("base_revision", found.own_revision),
        **extra,
    )


def _not_found(request: Request):
    return render(
        request, "error.html", 404, title="見つかりません", detail="指定された窓口はありません（または担当外です）。"
    )


@router.get("/policy")
async def policy_page(request: Request, session: PolicySession, desk: str | None = None):
    """The desk-PC policy in force (common, or one desk's), its versions, and the form to change it."""
    chosen = _desk_param(request, session, desk)
    if chosen == "":
        return _not_found(request)
    return await _page(request, session, chosen)


@router.post("/policy")
async def policy_change(request: Request, session: PolicySession):
    """Change the common policy or one desk's own; the agents apply it within seconds."""
    form = await read_form(request)
    desk = _desk_param(request, session, form.text("desk"))
    if desk == "":
        return _not_found(request)
    if desk is None and session.principal.wards:
        return await _page(
            request,
            session,
            None,
            403,
            form_error="窓口共通のポリシーは、担当区の限定がない業務責任者・管理者が変更します。",
        )
    js = request.app.state.js
    m = session.principal.municipality
    found = await p.effective(js, m, ROLE, desk)
    base = form.integer("base_revision", -1)
    base = -1 if base is None else base
    policy, errors, values = parse_form(form, found.loaded.policy)
    if policy is None:
        return await _page(
            request,
            session,
            desk,
            422,
            values=values,
            errors=errors,
            base_revision=base,
            form_error="入力内容を確認してください。"
            if errors
            else "ポリシーとして正しくありません。入力内容を確認してください。",
        )
    if base < 0:
        return await _page(
            request,
            session,
            desk,
            422,
            values=values,
            base_revision=base,
            form_error="画面を更新してからもう一度変更してください。",
        )
    try:
        revision = await p.change(
            js,
            m,
            ROLE,
            desk,
            policy,
            session.principal.actor,
            base_revision=base,
            correlation_id=correlation_id(request),
        )
    except p.PolicyConflict as exc:
        # the form keeps what was typed and now names the current revision: saving again is a
        # deliberate overwrite, after the person has seen the policy in force
        return await _page(
            request,
            session,
            desk,
            409,
            values=values,
            base_revision=exc.current,
            form_error=f"ほかの人が先にポリシーを変更しました（現在 版 {exc.current}）。"
            "入力した内容は残してあります。下の「現在のポリシー」を確かめ、必要ならもう一度保存してください。",
            conflict=True,
        )
    response = RedirectResponse("/policy" + (f"?desk={desk}" if desk else ""), status_code=303)
    set_flash(response, f"ポリシーを保存しました（版 {revision}）。窓口PCには数秒で反映されます。")
    return response


@router.post("/policy/remove")
async def policy_remove(request: Request, session: PolicySession):
    """Remove one desk's own policy: the desk follows the common policy again."""
    form = await read_form(request)
    desk = _desk_param(request, session, form.text("desk"))
    if not desk:
        return _not_found(request)
    now = await p.remove_desk(
        request.app.state.js,
        session.principal.municipality,
        ROLE,
        desk,
        session.principal.actor,
        correlation_id=correlation_id(request),
    )
    response = RedirectResponse(f"/policy?desk={desk}", status_code=303)
    set_flash(
        response,
        "この窓口個別のポリシーはありませんでした。"
        if now is None
        else f"この窓口個別のポリシーを削除しました。窓口共通のポリシー（版 {now.version}）に従います。",
    )
    return response


# --- what the desk PCs did (issue 17 §3: HQ shows per desk a timeline and counts) ---------------

EVENT_LABELS = {
    "agent_started": "監視エージェント開始",
    "agent_stopped": "監視エージェント停止",
    "heartbeat": "稼働通知",
    "policy_applied": "ポリシー適用",
    "policy_changed": "ポリシー変更",
    "outbox_size_alarm": "未送信記録の増加",
    "monitoring_notice_shown": "監視の告知を表示",
    "monitoring_notice_acknowledged": "監視の告知に同意",
    "monitoring_notice_declined": "監視の告知に不同意",
    "monitoring_gap": "監視されていない項目",
    "process_started": "プログラム起動",
    "session_changed": "ログオン・ロック",
    "file_activity": "ファイル操作",
    "file_not_scanned": "検査できなかったファイル",
    "print_job": "印刷",
    "reader_attached": "カード読取機の接続",
    "reader_detached": "カード読取機の取り外し",
    "card_inserted": "カード挿入",
    "card_removed": "カード取り出し",
    "card_left_in_reader": "カードの置き忘れ",
    "process_violation": "許可されていないアプリケーション",
    "usb_device_attached": "USB機器の接続",
    "usb_device_removed": "USB機器の取り外し",
    "usb_violation": "許可されていないUSB機器",
    "personal_data_file_found": "個人情報を含むファイル",
    "synthetic_load": "試験用の記録",
}
# The table's columns: a label and the event kinds it counts; `warn` columns are shown as problems.
COUNT_COLUMNS = (
    ("プログラム起動", ("process_started",), False),
    ("ファイル操作", ("file_activity",), False),
    ("ログオン・ロック", ("session_changed",), False),
    ("印刷", ("print_job",), False),
    ("USB接続", ("usb_device_attached",), False),
    ("カード挿入", ("card_inserted",), False),
    (
        "違反・警報",
        (
            "process_violation",
            "usb_violation",
            "personal_data_file_found",
            "card_left_in_reader",
            "monitoring_notice_declined",
        ),
        True,
    ),
    ("監視の欠落", ("monitoring_gap", "file_not_scanned"), True),
)
WARN_TYPES = {t for _, kinds, warn in COUNT_COLUMNS if warn for t in kinds}


@router.get("/policy/activity")
async def activity_page(
    request: Request, session: PolicySession, api: Api, date: str | None = None, device: str | None = None
):
    """Per desk and PC: how many programs, files, logons, prints, USB devices, cards, violations and
    gaps the log holds for a day, and one PC's timeline (time and kind of every event)."""
    from datetime import date as date_

    params: dict[str, str] = {}
    if date:
        try:
            params["date"] = date_.fromisoformat(date).isoformat()
        except ValueError:
            return render(
                request, "error.html", 422, title="入力内容に誤りがあります", detail="日付の形式が正しくありません。"
            )
    if device is not None and not IDENT.match(device):
        return _not_found(request)
    counts = await api.get("audit", "/v1/audit/device-activity", params)
    # who acknowledged the monitoring notice that day, who declined, who is on duty without (desk service)
    try:
        notice, notice_error = await api.get("desk", "/v1/monitoring-notice", params), None
    except ApiError as exc:
        if exc.status == 401:
            raise
        notice, notice_error = None, exc.detail
    timeline = None
    if device:
        timeline = await api.get("audit", f"/v1/audit/device-activity/{device}/timeline", params)
    rows = []
    for pc in counts.get("pcs", []):
        cells = [sum(pc["counts"].get(k, 0) for k in kinds) for _, kinds, _ in COUNT_COLUMNS]
        rows.append({**pc, "cells": cells})
    return render(
        request,
        "policy_activity.html",
        active="policy",
        day=counts.get("date"),
        rows=rows,
        columns=COUNT_COLUMNS,
        timeline=timeline,
        device=device,
        labels=EVENT_LABELS,
        warn_types=WARN_TYPES,
        notice=notice,
        notice_error=notice_error,
    )
