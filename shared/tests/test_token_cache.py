"""A token is verified once and then cached (issue 19), yet a cached token is refused the moment it
is revoked (logout: at once in the service that logged it out, within a second everywhere else) and
the moment it expires."""

from __future__ import annotations

import asyncio
import time

from madoguchi_shared import auth
from madoguchi_shared.auth import Role, issue_token

from test_staff_admin import PASSWORD, bearer, login, refused_within, service, service_settings


async def test_a_cached_token_is_refused_at_once_when_revoked(settings, js, municipality):
    s = service_settings(settings, municipality)
    async with service("alpha", s) as a, service("beta", s) as b:
        await auth.add_staff(js, municipality=municipality, staff_id="M0001", roles=[Role.manager], password=PASSWORD)
        token = (await login(a, "M0001", PASSWORD, municipality)).json()["access_token"]
        for client in (a, b, a, b):
            assert (await client.get("/v1/auth/me", headers=bearer(token))).status_code == 200
        hits = auth._verified.cache_info().hits
        assert (await a.get("/v1/auth/me", headers=bearer(token))).status_code == 200
        assert auth._verified.cache_info().hits == hits + 1  # verified from the cache, not again
        assert (await a.post("/v1/auth/logout", headers=bearer(token))).status_code == 204
        refused = await a.get("/v1/auth/me", headers=bearer(token))  # the very next request
        assert refused.status_code == 401 and "ログアウト" in refused.json()["detail"]
        await refused_within(b, bearer(token))
        assert auth._verified.cache_info().hits > hits + 1  # still cached: refused by the revocation check


async def test_a_cached_token_is_refused_once_it_expires(settings, js, municipality):
    s = service_settings(settings, municipality)
    async with service("alpha", s) as a:
        account = await auth.ensure_account(js, municipality=municipality, staff_id="M0002", roles=[Role.manager])
        # a lifetime that outlasts two requests on a loaded machine, then wait until it is over
        issued = time.time()
        token = issue_token(
            s, staff_id="M0002", roles=[Role.manager], municipality=municipality, version=account.version, ttl=4
        )
        assert (await a.get("/v1/auth/me", headers=bearer(token))).status_code == 200
        assert (await a.get("/v1/auth/me", headers=bearer(token))).status_code == 200
        await asyncio.sleep(max(0.0, issued + 5.2 - time.time()))
        expired = await a.get("/v1/auth/me", headers=bearer(token))
        assert expired.status_code == 401 and "有効期限" in expired.json()["detail"]
