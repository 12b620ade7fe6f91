"""The monitoring notice shown at each staff login on the desk PC (SEC-2: staff are told they
are monitored). The login session runs `madoguchi-agent notice --config ... --staff-id S0012`
(e.g. from the desktop's autostart): it shows the text, asks for acknowledgement and records both
in the agent's outbox, which the running agent drains. The text's sha256 goes into the events so
the auditors know which wording each person acknowledged.
"""

from __future__ import annotations

import hashlib

from madoguchi_agent.config import AgentConfig
from madoguchi_agent.outbox import Outbox
from madoguchi_shared.events import Actor, Role
from madoguchi_shared.events.device import MonitoringNoticeAcknowledged, MonitoringNoticeShown

NOTICE_JA = """\
【端末監視についてのお知らせ】
この窓口端末は、個人情報保護と情報セキュリティのため監視されています。
・操作の記録（アプリケーションの起動、USB機器の接続、ファイルの保存、ICカードの抜き差し）が
  本部および現場で確認されます。
・許可されていないアプリケーションは終了され、USBメモリ等の記憶媒体は使用できません。
・個人情報（個人番号・電話番号・メールアドレス等）を含むファイルを端末に保存しないでください。
  検知したファイルは隔離されます。
・マイナンバーカードの内容は読み取りません（カードの有無と種別のみ記録します）。
内容を確認し、同意のうえ業務を開始してください。
"""

NOTICE_SHA256 = hashlib.sha256(NOTICE_JA.encode()).hexdigest()


def record_notice(config: AgentConfig, staff_id: str, acknowledged: bool) -> list[str]:
    """Write shown (and acknowledged) into the outbox; returns the event types written."""
    envelope = dict(
        municipality=config.municipality, ward=config.ward, desk=config.desk, device_id=config.device_id,
        actor=Actor(id=config.device_id, role=Role.device),
    )
    shown = MonitoringNoticeShown(staff_id=staff_id, notice_sha256=NOTICE_SHA256, **envelope)
    events = [shown]
    if acknowledged:
        events.append(MonitoringNoticeAcknowledged(
            staff_id=staff_id, notice_sha256=NOTICE_SHA256, correlation_id=shown.event_id,
            causation_id=shown.event_id, **envelope,
        ))
    outbox = Outbox(config.outbox_path, config.outbox_max_bytes)
    try:
        outbox.put_many(events)
    finally:
        outbox.close()
    return [e.type for e in events]
