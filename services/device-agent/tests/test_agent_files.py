"""Personal data on disk (SEC-2): a file with a valid My Number in a watched folder is reported
(folder label, relative path, kind; never the number) and quarantined."""

from __future__ import annotations

import asyncio
import json
import stat
import zipfile

from agent_harness import make_config, of_type, running_agent, wait_for, write_policy_cache

from madoguchi_agent import files
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
    write_policy_cache(
        config, Policy(watched_folders=(WatchedFolder(label="desktop", path=str(desk)),), quarantine=True)
    )
    async with running_agent(config):
        await asyncio.sleep(0.3)  # the observer is scheduled
        (desk / "harmless.txt").write_text("2021年4月1日 8:45 窓口開設", encoding="utf-8")
        leaked = desk / "申請メモ" / "list.csv"
        leaked.write_text(f"受付,番号\n12,{MY_NUMBER[:4]} {MY_NUMBER[4:8]} {MY_NUMBER[8:]}\n", encoding="cp932")
        named = desk / "090-1234-5678 さん.txt"  # a phone number in the file name
        named.write_text(f"個人番号 {MY_NUMBER}", encoding="utf-8")
        events = await wait_for(
            nc,
            municipality,
            lambda es: len(of_type(es, "device.personal_data_file_found")) >= 2,
            what="personal data alerts",
        )

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


def test_every_kind_the_guard_names_is_reported(tmp_path):
    """A file holding only a date of birth (or a name, an address) is a hit with that kind. Before, a birth date
    made the scan raise (its kind was missing from the agent's order of kinds): no event, no quarantine."""
    folder = WatchedFolder(label="desktop", path=str(tmp_path))
    for kind, text in {
        "birth_date": "生年月日 昭和50年1月2日",
        "name": "氏名：東海林太郎",
        "address": "自宅：札幌市東区北15条東3丁目1番12号",
        "phone": "電話 123-4567",
    }.items():
        path = tmp_path / f"{kind}.txt"
        path.write_text(text, encoding="utf-8")
        hit = scan_file(folder, path, 1 << 20).hit
        assert hit is not None and kind in hit.kinds, (kind, hit)


def test_office_files_are_read_without_joining_cells(tmp_path):
    """An xlsx keeps each cell in its own element: two cells must not join into 12 digits."""
    folder = WatchedFolder(label="desktop", path=str(tmp_path))
    sheet = "<worksheet><sheetData><row><c><v>123456</v></c><c><v>789012</v></c></row></sheetData></worksheet>"
    xlsx = tmp_path / "cells.xlsx"
    with zipfile.ZipFile(xlsx, "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    assert scan_file(folder, xlsx, 1 << 20).hit is None
    with zipfile.ZipFile(xlsx, "w") as z:
        z.writestr("xl/sharedStrings.xml", f"<sst><si><t>{MY_NUMBER}</t></si></sst>")
    hit = scan_file(folder, xlsx, 1 << 20).hit
    assert hit is not None and hit.kinds == ("my_number",)
    binary = tmp_path / "image.bin"
    binary.write_bytes(b"\x00\x01" + MY_NUMBER.encode())
    assert scan_file(folder, binary, 1 << 20).hit is None
    utf16 = tmp_path / "memo.dat"
    utf16.write_bytes(json.dumps({"n": MY_NUMBER}).encode("utf-16"))
    assert scan_file(folder, utf16, 1 << 20).hit is not None


async def test_a_file_written_while_the_agent_was_stopped_is_found_at_start(nats_server, nc, municipality, tmp_path):
    docs = tmp_path / "home" / "desk-user" / "Documents"
    docs.mkdir(parents=True)
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"files": True})
    write_policy_cache(config, Policy(watched_folders=(WatchedFolder(label="documents", path=str(docs)),)))
    # written while the agent is not running: one in digits, one in kanji numerals (Shift_JIS)
    (docs / "before.txt").write_text(f"番号 {MY_NUMBER}\n", encoding="utf-8")
    kanji = MY_NUMBER.translate(str.maketrans("0123456789", "〇一二三四五六七八九"))
    (docs / "kanji.txt").write_text(f"個人番号：{kanji}\n", encoding="cp932")
    async with running_agent(config):
        events = await wait_for(
            nc, municipality, lambda es: len(of_type(es, "device.personal_data_file_found")) >= 2, what="found at start"
        )
    found = sorted(of_type(events, "device.personal_data_file_found"), key=lambda e: e.path)
    assert [(e.root, e.path, e.kinds, e.quarantined) for e in found] == [
        ("documents", "before.txt", ("my_number",), True),
        ("documents", "kanji.txt", ("my_number",), True),
    ]
    assert not (docs / "before.txt").exists() and not (docs / "kanji.txt").exists()
    for e in events:
        assert kanji not in dump_event(e).decode()


async def test_archives_names_large_files_and_every_change_are_checked(
    nats_server, nc, municipality, tmp_path, monkeypatch
):
    desk = tmp_path / "Desktop"
    desk.mkdir()
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"files": True})
    monkeypatch.setattr(files, "CHUNK", 64 * 1024)  # small chunks keep the test fast; same code path
    limit = 150 * 1024  # bigger files are read this far, in chunks
    write_policy_cache(
        config,
        Policy(
            watched_folders=(WatchedFolder(label="desktop", path=str(desk)),), max_scan_bytes=limit, quarantine=False
        ),
    )
    filler = ("窓口で受付をしました。" * 20 + "\n").encode("utf-8")
    with zipfile.ZipFile(desk / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("readme.txt", "nothing here")
        z.writestr("data/list.csv", f"id,no\n1,{MY_NUMBER}\n")
    (desk / f"{MY_NUMBER}.txt").write_text("中身に番号はありません", encoding="utf-8")  # only the name
    deep = desk / "deep.log"  # the number past the first chunk, within the limit
    deep.write_bytes(filler * (120 * 1024 // len(filler)) + f"番号 {MY_NUMBER}\n".encode())
    huge = desk / "huge.csv"  # bigger than the limit: scanned that far, then said so
    huge.write_bytes(filler * (200 * 1024 // len(filler)))
    async with running_agent(config):
        events = await wait_for(
            nc,
            municipality,
            lambda es: (
                len(of_type(es, "device.personal_data_file_found")) >= 3 and of_type(es, "device.file_not_scanned")
            ),
            timeout=60,
            what="scan at start",
        )
        # every change of a watched folder is recorded (inotify): create, modify, move, delete
        note = desk / "note.txt"
        note.write_text("メモ", encoding="utf-8")
        await asyncio.sleep(0.6)
        with open(note, "a", encoding="utf-8") as f:
            f.write("追記")
        await asyncio.sleep(0.6)
        note.rename(desk / "note2.txt")
        await asyncio.sleep(0.1)
        (desk / "note2.txt").unlink()
        events = await wait_for(
            nc,
            municipality,
            lambda es: any(e.action == "deleted" for e in of_type(es, "device.file_activity")),
            what="file activity",
        )

    found = {e.path: e for e in of_type(events, "device.personal_data_file_found")}
    assert set(found) == {"bundle.zip", "[redacted].txt", "deep.log"}
    assert found["bundle.zip"].in_archive and found["bundle.zip"].kinds == ("my_number",)
    assert found["[redacted].txt"].in_name and found["[redacted].txt"].findings == 1
    assert not found["deep.log"].in_name and not found["deep.log"].quarantined
    skipped = of_type(events, "device.file_not_scanned")
    assert [(e.path, e.reason, e.scanned_bytes) for e in skipped] == [("huge.csv", "too_large", limit)]
    assert skipped[0].size_bytes == huge.stat().st_size
    activity = [
        (e.action, e.path, e.dest_path) for e in of_type(events, "device.file_activity") if e.path.startswith("note")
    ]
    assert activity[0] == ("created", "note.txt", None)
    assert ("modified", "note.txt", None) in activity
    assert ("moved", "note.txt", "note2.txt") in activity and activity[-1] == ("deleted", "note2.txt", None)
    for e in events:
        assert MY_NUMBER not in dump_event(e).decode()


# The same hostile spellings the free-text fields refuse are found in files (issue 14): kanji
# numerals, readings, words for @ and the dot, a number split over Word runs or a line break.
HOSTILE_MY_NUMBER = "個人番号は 一二三四　五六七八\n九〇一八 です"  # 123456789018, a valid My Number
HOSTILE_PHONE = "連絡先：ゼロキューゼロ・イチニーサンヨン・ゴーロクナナハチ"
HOSTILE_EMAIL = "メールは taro アットマーク example ドット co ドット jp まで"
ORDINARY = "令和3年4月5日 10:30〜11:45 受付番号12、5,000円、〒060-8611、暗証番号を3回間違えた"


def _docx(path, paragraphs: list[list[str]]) -> None:
    body = "".join(
        "<w:p>" + "".join(f'<w:r><w:t xml:space="preserve">{run}</w:t></w:r>' for run in runs) + "</w:p>"
        for runs in paragraphs
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", f"<w:document><w:body>{body}</w:body></w:document>")


def _xlsx(path, rows: list[list[str]]) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    wb.save(path)


def test_hostile_spellings_found_in_txt_csv_xlsx_docx(tmp_path):
    folder = WatchedFolder(label="desktop", path=str(tmp_path))
    cases = {
        "my_number": HOSTILE_MY_NUMBER,
        "phone": HOSTILE_PHONE,
        "email": HOSTILE_EMAIL,
    }
    for kind, text in cases.items():
        txt = tmp_path / f"{kind}.txt"
        txt.write_text(f"{ORDINARY}\n{text}\n", encoding="utf-8")
        csv = tmp_path / f"{kind}.csv"
        csv.write_text(f'日付,メモ\n2021/04/05,"{text}"\n', encoding="cp932")
        xlsx = tmp_path / f"{kind}.xlsx"
        _xlsx(xlsx, [["日付", "メモ"], ["2021/04/05", text], [ORDINARY, "3件"]])
        docx = tmp_path / f"{kind}.docx"
        half = len(text) // 2  # Word splits a paragraph into runs anywhere, even inside a number
        _docx(docx, [[ORDINARY], [text[:half], text[half:]]])
        for path in (txt, csv, xlsx, docx):
            hit = scan_file(folder, path, 1 << 20).hit
            assert hit is not None and kind in hit.kinds, (path.name, hit)
    # ordinary writing in every format: no alert
    (tmp_path / "ok.txt").write_text(ORDINARY, encoding="utf-8")
    (tmp_path / "ok.csv").write_text(f'日付,件数,金額\n2021/04/05,3,"5,000"\n{ORDINARY}\n', encoding="cp932")
    _xlsx(
        tmp_path / "ok.xlsx",
        [["日付", "件数", "金額"], ["2021/04/05", 3, 5000], ["令和3年4月5日", "受付番号12", "〒060-8611"]],
    )
    _docx(tmp_path / "ok.docx", [[ORDINARY[:10], ORDINARY[10:]], ["手順①", "受付"]])
    for name in ("ok.txt", "ok.csv", "ok.xlsx", "ok.docx"):
        assert scan_file(folder, tmp_path / name, 1 << 20).hit is None, name
    # a CSV of counts is not one long number; two cells of a sheet never join into one number
    (tmp_path / "counts.csv").write_text(
        "".join(f"{i},{i + 1},{i + 2},{i + 3},{i * 7}\n" for i in range(200)), encoding="utf-8"
    )
    assert scan_file(folder, tmp_path / "counts.csv", 1 << 20).hit is None
    # two numeric cells of a sheet never join into one number
    # (「1234 5678」 in one cell is refused alone: two of the card's groups of four)
    _xlsx(tmp_path / "cells.xlsx", [["12345678", "9018"], ["090", "1234-5678"]])
    assert scan_file(folder, tmp_path / "cells.xlsx", 1 << 20).hit is None


async def test_what_is_written_to_removable_media_is_recorded(nats_server, nc, municipality, tmp_path):
    """A mounted stick (found by the policy's removable globs) is watched like a desk folder: what
    is copied onto it is recorded, and personal data on it is found."""
    media = tmp_path / "media"
    stick = media / "desk" / "USBSTICK"
    stick.mkdir(parents=True)
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"files": True})
    write_policy_cache(config, Policy(watched_folders=(), removable_globs=(str(media / "*" / "*"),), quarantine=False))
    async with running_agent(config):
        await asyncio.sleep(0.5)
        (stick / "report.csv").write_text("窓口,件数\n中央,12\n", encoding="utf-8")
        (stick / "copy.txt").write_text(f"個人番号 {MY_NUMBER}", encoding="utf-8")
        events = await wait_for(
            nc,
            municipality,
            lambda es: of_type(es, "device.personal_data_file_found") and len(of_type(es, "device.file_activity")) >= 2,
            what="activity on the stick",
        )
    written = {(e.root, e.path, e.action) for e in of_type(events, "device.file_activity")}
    assert {("removable", "report.csv", "created"), ("removable", "copy.txt", "created")} <= written
    found = of_type(events, "device.personal_data_file_found")[0]
    assert (found.root, found.path) == ("removable", "copy.txt")
    gaps = [(g.monitor, g.reason) for g in of_type(events, "device.monitoring_gap")]
    assert gaps == []  # a mounted medium is a watched folder


def test_a_file_holding_a_home_address_is_found(tmp_path):
    """The guard's address kind reaches the file scanner's event (its kind order knew five kinds)."""
    folder = WatchedFolder(label="desktop", path=str(tmp_path))
    path = tmp_path / "memo.txt"
    path.write_text(f"{ORDINARY}\n住所は札幌市北区北7条西2丁目8-1 サンハイツ203号室\n", encoding="utf-8")
    hit = scan_file(folder, path, 1 << 20).hit
    assert hit is not None and hit.kinds == ("address",), hit
