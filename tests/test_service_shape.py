"""One shape for every service (issue 20 item 3): the same names in the same places, so a reader who knows one
service finds their way in the next. Each test names the convention and fails on the first service off it."""

from __future__ import annotations

import importlib
import re
import tokenize
from pathlib import Path

import pytest
from fastapi import APIRouter

ROOT = Path(__file__).resolve().parent.parent
HTTP_SERVICES = ["madoguchi_desk", "madoguchi_calls", "madoguchi_audit", "madoguchi_reporting", "madoguchi_console"]


@pytest.mark.parametrize("package", HTTP_SERVICES)
def test_every_service_exports_its_routers_as_a_routers_function(package):
    api = importlib.import_module(f"{package}.api")
    assert callable(api.routers), f"{package}.api.routers must be a function returning the routers"
    built = api.routers()
    assert built and all(isinstance(router, APIRouter) for router in built)
    assert not hasattr(api, "ROUTERS")


def test_domain_errors_carry_no_http_status_and_the_web_layer_maps_every_kind():
    from madoguchi_shared import errors
    from madoguchi_shared.web import DOMAIN_STATUS, status_of

    kinds = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, errors.DomainError)]
    assert set(kinds) == set(DOMAIN_STATUS), "every kind of refusal has its one status, in web.py only"
    assert {status_of(k("x"))[0] for k in kinds} == {400, 403, 404, 409, 410, 422, 503}
    assert status_of(errors.Refused("x")) == (409, "現在の状態では実行できません")
    assert status_of(errors.Conflict("x")) == (409, "競合が発生しました")
    with pytest.raises(TypeError):
        errors.Refused("x", status=404)
    for kind in kinds:
        assert not any(hasattr(kind, name) for name in ("status", "status_code", "title"))


def test_one_command_context_method_and_one_clock():
    import inspect

    from madoguchi_calls import domain as calls
    from madoguchi_calls.service import CallsService
    from madoguchi_desk import domain as desk
    from madoguchi_desk.edge.service import EdgeDeskService
    from madoguchi_desk.service import DeskService
    from madoguchi_shared.clock import utc_clock

    for ctx in (desk.Ctx, calls.Ctx):
        assert callable(ctx.envelope) and not hasattr(ctx, "env")
    for service in (DeskService, EdgeDeskService, CallsService):
        assert inspect.signature(service).parameters["clock"].default is utc_clock
    assert utc_clock().utcoffset() is not None


def test_bus_fold_folds_stored_events_and_continues_a_cached_fold():
    from madoguchi_shared import bus

    # evolve sees only the events: plain tokens stand in for them here
    stored = [bus.Stored(3, "a3"), bus.Stored(7, "a7")]  # type: ignore[arg-type]
    assert bus.fold(lambda state, event: [*state, event], stored, []) == (["a3", "a7"], 7)
    assert bus.fold(lambda state, event: [*state, event], stored[1:], ["a3"], 3) == (["a3", "a7"], 7)
    assert bus.fold(lambda state, event: state, [], None, 5) == (None, 5)


def _mg_literals(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    with path.open("rb") as source:
        for tok in tokenize.tokenize(source.readline):
            if tok.type == tokenize.STRING and re.match(r"^[A-Za-z]*(\"\"\"|'''|\"|')mg\.", tok.string):
                found.append(f"{path.relative_to(root)}:{tok.start[0]}: {tok.string[:60]}")
    return found


def test_every_subject_is_built_by_subjects_py():
    """No string starting with "mg." in any source, test, tool or bench outside subjects.py: a subject, a
    wildcard or a permission is built there (aggregate_subject, context_filter, pattern, everything, ...)."""
    files = [
        p
        for folder in ("services", "shared", "tools", "tests", "bench", "scripts")
        for p in (ROOT / folder).rglob("*.py")
        if ".venv" not in p.parts and p != ROOT / "shared/src/madoguchi_shared/subjects.py"
    ] + [ROOT / "conftest.py"]
    assert len(files) > 300
    hand_written = [hit for p in files for hit in _mg_literals(p)]
    assert hand_written == [], "\n".join(hand_written)


def test_the_scan_sees_a_hand_written_subject(tmp_path):
    (tmp_path / "x.py").write_text('A = f"mg.desk.{m}.>"\nB = b"mg.admin.1.a"\nC = "mg_textkey.>"\n')
    hits = _mg_literals(tmp_path / "x.py", tmp_path)
    assert [hit.split(": ")[1] for hit in hits] == ['f"mg.desk.{m}.>"', 'b"mg.admin.1.a"']


def test_domains_are_pure_and_name_no_http_status():
    """Every domain.py raises the shared refusals and imports nothing of the web layer (audit's used to import
    its errors from madoguchi_shared.web; desk's refusals carried status codes)."""
    domains = sorted(ROOT.glob("services/*/src/*/domain.py"))
    assert len(domains) == 5
    for path in domains:
        source = path.read_text()
        assert not re.search(r"^\s*(from|import) (fastapi|starlette|madoguchi_shared\.web)\b", source, re.M), path
        assert not re.search(r"\bstatus(_code)?\s*=\s*[1-5]\d\d\b", source), path
        assert "class Refus" not in source and "(DomainError):" not in source, path
