"""Bearer tokens for tests: one helper instead of one per service's tests (issue 20)."""

from __future__ import annotations

from collections.abc import Iterable

from madoguchi_shared.auth import Role, issue_token, token_for


def bearer(token: str) -> dict[str, str]:
    """The Authorization header carrying `token`."""
    return {"Authorization": f"Bearer {token}"}


async def staff_headers(
    js, settings, municipality: str, staff_id: str, roles: Iterable[Role], wards: Iterable[str] = ()
) -> dict[str, str]:
    """The header of a staff account with these roles and wards, logged in as the services do (made if missing)."""
    token = await token_for(
        js, settings, staff_id=staff_id, roles=list(roles), wards=list(wards), municipality=municipality
    )
    return bearer(token)


def credential_headers(settings, municipality: str, staff_id: str, roles: Iterable[Role], kind: str) -> dict[str, str]:
    """The header of a non-staff credential (`kind`: service, device, ...), issued directly."""
    return bearer(
        issue_token(settings, staff_id=staff_id, roles=list(roles), wards=[], municipality=municipality, kind=kind)
    )
