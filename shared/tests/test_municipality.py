"""Municipal configuration (ORG-1, DESK-2, DESK-10, CALL-1) loaded from TOML."""

from __future__ import annotations

from datetime import date, time

import pytest
from pydantic import ValidationError

from madoguchi_shared.municipality import Municipality, MunicipalityNotFound, config_dirs, load_municipality

WARDS = ["chuo", "kita", "higashi", "shiroishi", "atsubetsu", "toyohira", "kiyota", "minami", "nishi", "teine"]


def test_org1_sapporo_has_ten_ward_desks():
    m = load_municipality("011002")
    assert m.code == "011002" and m.name_ja == "札幌市"
    assert [w.id for w in m.wards] == WARDS
    assert m.ward("toyohira").name_ja == "豊平区"
    assert [d.id for d in m.desks] == [f"{w}-1" for w in WARDS]
    assert m.desk("teine-1").ward == "teine"


def test_desk2_capacity_and_call1_phone_line():
    m = load_municipality("011002")
    assert {d.expected_max_visitors for d in m.desks} == {80}
    assert m.capacity_thresholds == (0.8, 1.0, 1.25)
    assert m.phone.expected_max_calls_per_day == 20 and m.phone.hours.open == time(8, 45)
    assert m.phone_calendar().hours(date(2021, 4, 4)).open_day is False  # no special opening on the phone line


def test_desk10_equipment_inventory_has_twenty_items():
    m = load_municipality("011002")
    assert len(m.equipment) == 20 and [e.no for e in m.equipment] == list(range(1, 21))
    assert {e.key for e in m.equipment if e.incident_if_missing} == {"laptop", "card_reader"}
    assert m.equipment_item("card_reader").name_ja == "ICカードリーダー"


def test_desk1_april_2021_special_days():
    cal = load_municipality("011002").calendar()
    assert cal.hours(date(2021, 4, 4), "chuo-1").kind == "special_opening"
    assert [cal.hours(date(2021, 4, d)).closes.hour for d in (1, 2, 5, 6)] == [19, 19, 19, 17]


def test_load_by_path_with_code_override(tmp_path):
    src = next(d for d in config_dirs() if (d / "011002.toml").exists()) / "011002.toml"
    m = load_municipality(src, code="999001")
    assert m.code == "999001" and len(m.desks) == 10
    with pytest.raises(MunicipalityNotFound):
        load_municipality("999999", config_dir=tmp_path)


def test_another_municipality_is_another_file(tmp_path):
    (tmp_path / "012025.toml").write_text(
        'code = "012025"\nname_ja = "小樽市"\ncapacity_thresholds = [1.0]\n'
        "[desk_defaults]\nexpected_max_visitors = 30\n"
        '[[wards]]\nid = "otaru"\nname_ja = "小樽市"\ndesks = [{ id = "otaru-1", name_ja = "本庁舎" }, '
        '{ id = "otaru-2", name_ja = "支所", expected_max_visitors = 10 }]\n'
    )
    m = load_municipality("012025", config_dir=tmp_path)
    assert isinstance(m, Municipality) and [d.expected_max_visitors for d in m.desks] == [30, 10]
    with pytest.raises(ValidationError):
        Municipality.model_validate({**m.model_dump(), "capacity_thresholds": [1.2, 0.8]})
    with pytest.raises(ValidationError):
        m.name_ja = "changed"  # frozen


def test_duplicate_desks_are_refused():
    ward = {"id": "a", "name_ja": "A", "desks": [{"id": "a-1", "name_ja": "x"}]}
    with pytest.raises(ValidationError):
        Municipality.model_validate({"code": "000001", "name_ja": "X", "wards": [ward, {**ward, "id": "b"}]})
