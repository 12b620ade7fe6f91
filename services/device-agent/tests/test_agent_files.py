"""Personal data on disk (SEC-2): a file with a valid My Number in a watched folder is reported
(folder label, relative path, kind; never the number) and quarantined."""

from __future__ import annotations

import asyncio
import json
import stat
import zipfile

from agent_harness import make_config, of_type, running_agent, wait_for, write_policy_cache

from madoguchi_agent.files import scan_file
from madoguchi_agent.policy import Policy, WatchedFolder
from madoguchi_shared.events import dump_event
from madoguchi_shared.pii import is_valid_my_number, my_number_check_digit

FIRST11 = "12345678901"
MY_NUMBER = FIRST11 + str(my_number_check_digit(FIRST11))


async def test_my_number_file_is_reported_and_quarantined(nats_server, nc, municipality, tmp_path):
    assert is_valid_my_number(MY_NUMBER)
    desk = tmp_path / "home" / "desk-user" / "Desktop"
    (desk / "申請メモ").mkdir(parents=True)
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"files": True})
    write_policy_cache(config, Policy(watched_folders=(WatchedFolder(label="desktop", path=str(desk)),),
                                      quarantine=True))
    async with running_agent(config):
        await asyncio.sleep(0.3)  # the observer is scheduled
        (desk / "harmless.txt").write_text("2021年4月1日 8:45 窓口開設", encoding="utf-8")
        leaked = desk / "申請メモ" / "list.csv"
        leaked.write_text(f"受付,番号\n12,{MY_NUMBER[:4]} {MY_NUMBER[4:8]} {MY_NUMBER[8:]}\n", encoding="cp932")
        named = desk / "090-1234-5678 さん.txt"  # a phone number in the file name
        named.write_text(f"個人番号 {MY_NUMBER}", encoding="utf-8")
        events = await wait_for(nc, municipality, lambda es: len(of_type(es, "device.personal_data_file_found")) >= 2,
                                what="personal data alerts")

    found = {e.path: e for e in of_type(events, "device.personal_data_file_found")}
    assert set(found) == {"申請メモ/list.csv", "[redacted].txt"}  # no alert for the harmless file
    alert = found["申請メモ/list.csv"]
    assert alert.root == "desktop" and alert.kinds == ("my_number",) and alert.findings == 1
    assert alert.quarantine and alert.quarantined and alert.quarantine_name == f"{alert.event_id}.csv"
    # quarantined: gone from the desktop, kept in the agent's protected folder
    assert not leaked.exists() and not named.exists() and (desk / "harmless.txt").exists()
    moved = config.quarantine_dir / alert.quarantine_name
    assert moved.read_bytes().decode("cp932").count(MY_NUMBER[:4]) == 1
    assert stat.S_IMODE(config.quarantine_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(moved.stat().st_mode) == 0o600
    # the events hold neither the number nor the account name of the watched folder
    for e in found.values():
        raw = dump_event(e).decode()
        assert MY_NUMBER not in raw and MY_NUMBER[:4] not in raw and "desk-user" not in raw and "1234-5678" not in raw
    assert "隔離" in alert.describe_ja()


def test_office_files_are_read_without_joining_cells(tmp_path):
    """An xlsx keeps each cell in its own element: two cells must not join into 12 digits."""
    folder = WatchedFolder(label="desktop", path=str(tmp_path))
    sheet = "<worksheet><sheetData><row><c><v>123456</v></c><c><v>789012</v></c></row></sheetData></worksheet>"
    xlsx = tmp_path / "cells.xlsx"
    with zipfile.ZipFile(xlsx, "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    assert scan_file(folder, xlsx, 1 << 20) is None
    with zipfile.ZipFile(xlsx, "w") as z:
        z.writestr("xl/sharedStrings.xml", f"<sst><si><t>{MY_NUMBER}</t></si></sst>")
    hit = scan_file(folder, xlsx, 1 << 20)
    assert hit is not None and hit.kinds == ("my_number",)
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x00\x01" + MY_NUMBER.encode())
    assert scan_file(folder, binary, 1 << 20) is None
    utf16 = tmp_path / "memo.dat"
    utf16.write_bytes(json.dumps({"n": MY_NUMBER}).encode("utf-16"))
    assert scan_file(folder, utf16, 1 << 20) is not None
