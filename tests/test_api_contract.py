"""The API contract (issue 20): every service's OpenAPI, fuzzed by schemathesis over real HTTP against the
real service (the session's nats-server and PostgreSQL), with a valid token holding every role. Fails on
any 500, and on any status, content type or body the OpenAPI does not describe (every error is an
`application/problem+json` document, each route declares the statuses it can answer).

Bounded here (`CONTRACT_MAX_EXAMPLES`, a few cases per operation, a couple of minutes for all services);
`make fuzz` runs the same with many more examples and prints the figures per service.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest

from madoguchi_shared.auth import Role
from tests.utils.auth import staff_headers
from tests.utils.servers import Served, as_service, own_audit_log, unique_municipality

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("desk", "calls", "audit", "reporting", "console")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Not fuzzed: logout, and a change of an account's roles, its disabling or a password reset, which revoke the
# run's own token once the fuzzer has learnt its staff id from a response (every later case would get a
# documented 401: shared/tests/test_staff_admin.py covers them); the server-sent event streams never end
# (answered until the client goes: a request of the fuzzer would wait out its timeout).
EXCLUDE = r"/v1/auth/logout$|/v1/staff/\{staff_id\}/(roles|disable|password-reset)$|/live$|/stream$"
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "4"))
PHASES = os.environ.get("CONTRACT_PHASES", "examples,coverage,fuzzing")
SEED = os.environ.get("CONTRACT_SEED", "20")  # the same cases every run; `make fuzz` draws new ones ("")


async def run_schemathesis(url: str, headers: dict[str, str], report: Path) -> tuple[int, str]:
    """`st run` against the served app; the run's own summary (stdout) and exit code. One worker: with two,
    hypothesis' ast.parse in two threads at once trips CPython 3.11's "AST constructor recursion depth
    mismatch" SystemError now and then (a crash of the fuzzer, not of a service). A weekly report rendered
    as PDF takes its seconds on a loaded 2-core machine: a request may take up to 90 s here."""
    st = Path(sys.executable).with_name("st")
    args = [str(st), "run", f"{url}/openapi.json", "--checks", CHECKS, "--exclude-path-regex", EXCLUDE]
    args += ["--max-examples", str(MAX_EXAMPLES), "--phases", PHASES, "--workers", "1"]
    args += ["--seed", SEED] if SEED else []
    args += ["--request-timeout", "90", "--no-color", "--report", "ndjson", "--report-ndjson-path", str(report)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=report.parent
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def figures(report: Path) -> dict[str, int]:
    """Operations, cases and failures of a run, from schemathesis' ndjson event log."""
    ops: set[str] = set()
    cases = failures = 0
    for line in report.read_text().splitlines():
        event = json.loads(line)
        for kind, body in event.items():
            if kind == "ScenarioFinished" and body.get("recorder"):
                label = body["recorder"].get("label")
                if label:
                    ops.add(label)
                for checks in body["recorder"].get("checks", {}).values():
                    cases += 1
                    failures += any(str(c.get("status")).lower() == "failure" for c in checks)
    return {"operations": len(ops), "cases": cases, "failures": failures}


def build(name: str, settings):
    import importlib

    factory = importlib.import_module(f"madoguchi_{name}.main").create_app
    return factory(settings if name == "console" else as_service(settings, name))


@pytest.mark.parametrize("service", SERVICES)
async def test_openapi_contract(service, settings, js, tmp_path):
    municipality = unique_municipality()
    settings = settings.model_copy(
        update={
            "municipality": municipality,
            "log_level": "ERROR",
            "config_file": REPO / "config" / "municipalities" / "011002.toml",
        }
    )
    if service == "audit":
        settings = await own_audit_log(settings, municipality)
    served = Served(build(service, settings))
    await served.start()
    try:
        headers = await staff_headers(js, settings, municipality, "CONTRACT01", list(Role))
        report = tmp_path / "events.ndjson"
        code, out = await run_schemathesis(served.url, headers, report)
        async with httpx.AsyncClient(base_url=served.url, headers=headers) as client:
            me = await client.get("/v1/auth/me")  # the token held to the end: no case was a masked 401
    finally:
        await served.stop()
    counted = figures(report)
    print(f"schemathesis {service}: {counted}")
    assert counted["operations"] > 0 and counted["cases"] > 0, out[-4000:]
    assert me.status_code == 200, me.text
    assert code == 0 and counted["failures"] == 0, out[-12000:]


@pytest.mark.parametrize("service", SERVICES)
def test_every_error_is_a_problem_document(service, settings):
    """The OpenAPI itself: every error response of every operation is an `application/problem+json` Problem;
    FastAPI's own 422 (HTTPValidationError, which no service sends) is gone; every operation behind the
    bearer token declares 401 and 403, every one taking input 422, every one with a body 400."""
    settings = settings.model_copy(update={"config_file": REPO / "config" / "municipalities" / "011002.toml"})
    spec = build(service, settings).openapi()
    assert "HTTPValidationError" not in json.dumps(spec)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    assert set(spec["components"]["schemas"]["Problem"]["required"]) >= {"type", "title", "status", "detail"}
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            label = f"{method.upper()} {path}"
            for status, response in responses.items():
                if status[0] in "45" and label != "GET /readyz":
                    assert response["content"] == {"application/problem+json": {"schema": problem_ref}}, label
                    checked += 1
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), label
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, label
            if operation.get("requestBody"):
                assert "400" in responses, label
    assert checked > 0
