"""Fault injection, credentials: a forged, expired, unsigned (alg none), revoked (logged out) or unknown
token is refused 401 by every HQ service (desk, calls, reporting, audit), a wrong role 403, and a
revocation at one service holds at the others. A device's or service's credential (the PBX, valid 30 days)
logged out was still accepted everywhere (its revocation was never looked up)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from pydantic import SecretStr

from madoguchi_shared.auth import Role, decode_token, issue_token
from tests.utils.auth import bearer, staff_headers
from tests.utils.servers import own_audit_log
from tests.test_api_contract import build

# a route each service answers to a manager (and to the PBX's service credential where it reads)
READS = {
    "desk": "/v1/desks",
    "calls": "/v1/lines/main/state",
    "reporting": "/v1/reports/daily?desk=chuo-1&date=2021-04-01",
    "audit": "/v1/audit/records",
}


def _unsigned(settings, municipality: str) -> str:
    """A token claiming to be a manager with no signature at all (alg "none")."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": "M1", "kind": "staff", "roles": ["manager"], "wards": [], "mun": municipality}
    claims |= {"iat": now, "exp": now + 3600, "jti": "ab" * 16, "ver": 0}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_bad_tokens_are_refused_by_every_service_and_a_revocation_holds_everywhere(settings, js, municipality):
    sapporo = Path(__file__).resolve().parents[1] / "config" / "municipalities" / "011002.toml"
    s = settings.model_copy(update={"municipality": municipality, "config_file": sapporo, "log_level": "WARNING"})
    audit_settings = await own_audit_log(s, municipality)
    clients: dict[str, httpx.AsyncClient] = {}
    async with AsyncExitStack() as stack:
        for name in READS:
            app = build(name, audit_settings if name == "audit" else s)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60)
            )

        async def statuses(headers: dict[str, str]) -> dict[str, int]:
            return {n: (await c.get(READS[n], headers=headers)).status_code for n, c in clients.items()}

        manager = await staff_headers(js, s, municipality, "M1", [Role.manager, Role.auditor])
        assert await statuses(manager) == dict.fromkeys(READS, 200)

        other_secret = s.model_copy(update={"token_secret": SecretStr("another-secret-another-secret-xx")})
        bad = {
            "none": {},
            "garbage": bearer("not.a.token"),
            "forged": bearer(issue_token(other_secret, staff_id="M1", roles=[Role.manager], municipality=municipality)),
            "expired": bearer(issue_token(s, staff_id="M1", roles=[Role.manager], municipality=municipality, ttl=-5)),
            "unsigned": bearer(_unsigned(s, municipality)),
            # signed right, but no such account (a token made up for a staff id that was never created)
            "unknown": bearer(issue_token(s, staff_id="NOBODY", roles=[Role.manager], municipality=municipality)),
        }
        for case, headers in bad.items():
            answers = {n: await c.get(READS[n], headers=headers) for n, c in clients.items()}
            assert {n: r.status_code for n, r in answers.items()} == dict.fromkeys(READS, 401), case
            for r in answers.values():
                assert r.headers["content-type"].startswith("application/problem+json"), (case, r.text)

        # a supporter may not read the audit log nor the reports: 403, not 401 nor 200
        supporter = await staff_headers(js, s, municipality, "S1", [Role.supporter], ["chuo"])
        got = await statuses(supporter)
        assert (got["audit"], got["reporting"]) == (403, 403), got

        # a staff member logs out at the desk service: the token is refused by all four
        assert (await clients["desk"].post("/v1/auth/logout", headers=manager)).status_code in (200, 204)
        assert await _until_refused(statuses, manager) == dict.fromkeys(READS, 401)

        # the PBX's credential (kind service) reads the desk list and opens calls; logged out, it is refused
        pbx = bearer(  # as `madoguchi credential service pbx` issues it: valid 30 days
            issue_token(
                s, staff_id="pbx", roles=[Role.service], municipality=municipality, kind="service", ttl=30 * 86400
            )
        )
        assert (await clients["desk"].get(READS["desk"], headers=pbx)).status_code == 200
        assert (await clients["calls"].post("/v1/auth/logout", headers=pbx)).status_code in (200, 204)
        deadline = time.monotonic() + 10
        while (r := await clients["desk"].get(READS["desk"], headers=pbx)).status_code == 200:
            assert time.monotonic() < deadline, "a logged-out service credential still read the desks"
            await asyncio.sleep(0.05)
        assert r.status_code == 401, r.text
        r = await clients["calls"].post("/v1/calls", headers=pbx, json={})
        assert r.status_code == 401, r.text  # no call opened by a revoked credential
    # the revocation is kept as long as the credential lives (30 days), not a bucket-wide week
    principal = decode_token(s, pbx["Authorization"].removeprefix("Bearer "))
    kept = await js.get_last_msg("KV_mg_revoked", f"$KV.mg_revoked.{principal.token_id}")
    assert (await js.stream_info("KV_mg_revoked")).config.max_age in (None, 0)
    ttl = kept.headers["Nats-TTL"]
    assert principal.expires and principal.expires - time.time() > 29 * 86400
    assert float(ttl.rstrip("s")) >= principal.expires - time.time(), ttl


async def _until_refused(statuses, headers: dict[str, str]) -> dict[str, int]:
    """The statuses once the revocation reached every service's copy (a KV watch: milliseconds)."""
    deadline = time.monotonic() + 10
    while True:
        got = await statuses(headers)
        if set(got.values()) <= {401, 403} or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)
