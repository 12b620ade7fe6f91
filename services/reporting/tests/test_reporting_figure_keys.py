"""Figures are named in one place (madoguchi_shared.figures): the report models' figure fields are
its keys, and no module that builds, prints or checks a report spells a figure key as a string."""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from madoguchi_shared.events import calls, desk, report
from madoguchi_shared.figures import LABELS, Family, Fig, figure_keys
from madoguchi_reporting.reports import models as md

ROOT = Path(__file__).resolve().parents[3]
# The modules that count, build, lay out, render, check or predict report figures.
SCANNED = [
    *sorted(
        p for p in (ROOT / "services/reporting/src/madoguchi_reporting").glob("*.py") if p.name != "never-excluded"
    ),
    *sorted((ROOT / "services/reporting/src/madoguchi_reporting/reports").glob("*.py")),
    *sorted((ROOT / "services/reporting/src/madoguchi_reporting/projections").glob("*.py")),
    ROOT / "services/console/src/madoguchi_console/screens/reports.py",
    ROOT / "tools/simulator/src/madoguchi_sim/truth.py",
]


def _figure_literals(tree: ast.AST, keys: frozenset[str]) -> list[tuple[int, str]]:
    """String constants equal to a figure key where a figure key goes: a dict key, a subscript,
    the key of `.get(...)`, an element of a tuple/list/set, one side of a comparison."""
    found: list[tuple[int, str]] = []

    def check(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in keys:
            found.append((node.lineno, node.value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k in node.keys:
                check(k)
        elif isinstance(node, ast.Subscript):
            check(node.slice)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            check(node.args[0] if node.args else None)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            for e in node.elts:
                check(e)
        elif isinstance(node, ast.Compare):
            for e in (node.left, *node.comparators):
                check(e)
    return found


def _vocabulary() -> set[str]:
    """Words that are also an event's code ("answered" is a call's connection as well as a figure)
    or a statistics table's column: a string cannot tell which it means, so these are not checked."""
    codes: set[str] = set()
    for module in (calls, desk, report):
        for value in vars(module).values():
            if typing.get_origin(value) is typing.Literal:
                codes.update(a for a in typing.get_args(value) if isinstance(a, str))
    ddl = (ROOT / "services/reporting/src/madoguchi_reporting/schema.py").read_text()
    columns = set(re.findall(r"^\s+([a-z_]+) (?:text|int|bigint|boolean|date|timestamptz|jsonb|uuid)", ddl, re.M))
    return codes | columns


def test_no_module_spells_a_figure_key() -> None:
    keys = figure_keys() - _vocabulary()
    offenders = []
    for path in SCANNED:
        for line, key in _figure_literals(ast.parse(path.read_text(), str(path)), keys):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {key!r}")
    assert not offenders, "figure keys spelled as strings (use madoguchi_shared.figures):\n" + "\n".join(offenders)


def test_the_scan_finds_a_bare_key() -> None:
    """The scan is not vacuous: each context it checks is caught."""
    source = 'a = {"visitors": 1}\nb = c["answered"]\nd = e.get("by_hour")\nf = ("closed",)\ng = h == "received"\n'
    assert [k for _l, k in _figure_literals(ast.parse(source), figure_keys())] == [
        "visitors",
        "answered",
        "by_hour",
        "closed",
        "received",
    ]


FIGURE_MODELS = [md.DeskFigures, md.LineFigures, md.CityDeskRow, md.CityLineRow]


@pytest.mark.parametrize("model", FIGURE_MODELS, ids=lambda m: m.__name__)
def test_figure_fields_are_figures(model: type[BaseModel]) -> None:
    """Every field of a figures model is a figure or a family of figures of the one module."""
    names = {*Fig, *Family}
    assert set(model.model_fields) <= names, set(model.model_fields) - names


def test_every_flat_figure_has_a_label() -> None:
    """Every flat figure of the desk and line reports prints with a Japanese label."""
    for model in (md.DeskFigures, md.LineFigures):
        for name, info in model.model_fields.items():
            if info.annotation in (int, float | None):
                assert name in LABELS, f"{model.__name__}.{name} has no label"


def test_the_city_tables_are_the_listed_figures() -> None:
    """The city-wide daily report's columns are the lists in figures.py, nothing more or less."""
    from madoguchi_shared.figures import CITY_DESK, CITY_LINE

    assert {k.split(".")[0] for k in CITY_DESK} == set(md.CityDeskRow.model_fields)
    assert {k.split(".")[0] for k in CITY_LINE} == set(md.CityLineRow.model_fields)
