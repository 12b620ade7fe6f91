"""The monitoring notice shown at each staff login on the desk PC (SEC-2: staff are told they
are monitored). The login session runs `madoguchi-agent notice --config ... --staff-id S0012`
(e.g. from the desktop's autostart): it shows the text, asks for acknowledgement and records the
answer in the agent's outbox, which the running agent drains. Declining is recorded too
(MonitoringNoticeDeclined): HQ alerts the manager and the desk refuses that staff member's
check-in for the day; the command exits 1 so the session script can log the user out.

The text is generated from the policy in force (the agent's cache, else the built-in default) and
the monitors the agent runs, so it never promises more, or less, than is done. Its sha256 and the
policy version go into the events: the auditors know which wording each person saw.

The staff id is checked against the staff accounts on the bus (`mg.admin.<municipality>.staff.<id>`)
when the bus answers within a few seconds: an unknown id is refused and nothing is recorded.
Offline, the answer is recorded with `staff_verified = false` and the desk checks the id at check-in.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from madoguchi_agent.config import AgentConfig
from madoguchi_agent.outbox import Outbox
from madoguchi_agent.policy import Policy, default_policy, load_cache
from madoguchi_shared.events import Actor, Role
from madoguchi_shared.events.device import (
    MonitoringNoticeAcknowledged,
    MonitoringNoticeDeclined,
    MonitoringNoticeShown,
)

_FOLDER_JA = {
    "desktop": "デスクトップ",
    "documents": "ドキュメント",
    "downloads": "ダウンロード",
    "removable": "外部記憶媒体",
}


def notice_text(policy: Policy, config: AgentConfig) -> str:
    """The notice for this policy and these monitors (Japanese, shown to staff)."""
    m = config.monitors
    recorded = []
    if m.processes:
        recorded.append("アプリケーションの起動（プログラム名・場所・起動した利用者）")
    if m.files and policy.file_activity:
        recorded.append("監視フォルダ内のファイルの作成・変更・移動・削除（ファイル名のみ、内容は記録しません）")
    if m.sessions:
        recorded.append("ログオン・ログオフ・画面ロック")
    if m.usb:
        recorded.append("USB機器の接続・取り外し")
    if m.printing:
        recorded.append("印刷（プリンター名と枚数のみ、文書名・内容は記録しません）")
    if m.card:
        recorded.append("ICカードの抜き差し（カードの有無と種別のみ）")
    lines = ["【端末監視についてのお知らせ】", "この窓口端末は、個人情報保護と情報セキュリティのため監視されています。"]
    if recorded:
        lines.append("・次の操作が記録され、本部および現場で確認されます: " + "、".join(recorded) + "。")
    if m.processes:
        lines.append(
            "・許可されていないアプリケーションは"
            + ("直ちに終了されます。" if policy.process_enforce else "記録され、本部に通知されます。")
        )
    if m.usb:
        blocked = []
        if policy.usb_block_mass_storage:
            blocked.append("USBメモリ等の記憶媒体")
        if policy.usb_block_not_allowed:
            blocked.append("スマートフォン等の許可されていない機器")
        if blocked:
            lines.append("・" + "や".join(blocked) + "は接続しても遮断されます。")
    if m.files and policy.watched_folders:
        names = "・".join(dict.fromkeys(_FOLDER_JA.get(f.label, f.label) for f in policy.watched_folders))
        action = "隔離されます" if policy.quarantine else "本部に通知されます"
        lines.append(
            f"・{names}フォルダおよび外部記憶媒体のファイルは個人情報（個人番号・電話番号・メールアドレス等）を"
            f"検査され、検知したファイルは{action}。個人情報を端末に保存しないでください。"
        )
    if m.card:
        lines.append("・マイナンバーカードの内容は読み取りません。")
    lines.append(
        "内容を確認し、同意のうえ業務を開始してください。同意しない場合、この端末の窓口では受付を開始できません。"
    )
    return "\n".join(lines) + "\n"


def current_policy(config: AgentConfig):
    return load_cache(config.policy_cache_path) or default_policy()


def notice_for(config: AgentConfig) -> tuple[str, str, int]:
    """(text, sha256, policy version) for the policy in force on this PC."""
    loaded = current_policy(config)
    text = notice_text(loaded.policy, config)
    return text, hashlib.sha256(text.encode()).hexdigest(), loaded.version


async def staff_known(config: AgentConfig, staff_id: str, timeout: float = 3.0) -> bool | None:
    """True/False when the bus says whether the staff account exists; None when it cannot tell."""
    import nats
    from nats.js.errors import NotFoundError

    from madoguchi_shared import subjects

    try:
        options = {
            "connect_timeout": timeout,
            "allow_reconnect": False,
            "max_reconnect_attempts": 0,
            **config.nats_options(),
        }
        nc = await asyncio.wait_for(nats.connect(config.nats_url, **options), timeout)
    except Exception:  # noqa: BLE001 - cannot connect: the notice cannot tell
        return None
    try:
        js = nc.jetstream(timeout=timeout)
        await js.get_last_msg("MG_ADMIN", subjects.aggregate_subject("admin", config.municipality, "staff", staff_id))
        return True
    except (NotFoundError, subjects.SubjectError):
        return False
    except Exception:  # noqa: BLE001 - no permission, no stream yet, timeout: cannot tell
        return None
    finally:
        await nc.close()


def record_notice(config: AgentConfig, staff_id: str, acknowledged: bool, *, verified: bool | None = None) -> list[str]:
    """Write shown and acknowledged (or declined) into the outbox; returns the event types written."""
    _text, digest, version = notice_for(config)
    envelope: dict[str, Any] = dict(
        municipality=config.municipality,
        ward=config.ward,
        desk=config.desk,
        device_id=config.device_id,
        actor=Actor(id=config.device_id, role=Role.device),
    )
    shown = MonitoringNoticeShown(
        staff_id=staff_id, notice_sha256=digest, policy_version=version, staff_verified=verified, **envelope
    )
    answer = MonitoringNoticeAcknowledged if acknowledged else MonitoringNoticeDeclined
    events = [
        shown,
        answer(
            staff_id=staff_id,
            notice_sha256=digest,
            correlation_id=shown.event_id,
            causation_id=shown.event_id,
            **envelope,
        ),
    ]
    outbox = Outbox(config.outbox_path, config.outbox_max_bytes, config.outbox_reserve_bytes)
    try:
        outbox.put_many(events)
    finally:
        outbox.close()
    return [e.type for e in events]
