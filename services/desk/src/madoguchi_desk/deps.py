"""FastAPI dependencies as Annotated aliases: the service, the principal by role set, the desk."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from madoguchi_desk.service import DeskService
from madoguchi_shared.auth import Principal, Role, require, state_value
from madoguchi_shared.municipality import Desk
from madoguchi_shared.errors import NotFound

# Who may do what (ORG-2): supporters work a desk of their own wards; rounders help any desk;
# the manager runs the day and handles escalations; city staff and auditors only read.
READ_ROLES = (
    Role.manager,
    Role.rounder,
    Role.supporter,
    Role.operator,
    Role.city_staff,
    Role.auditor,
    Role.administrator,
    Role.service,
)
DESK_ROLES = (Role.supporter, Role.rounder, Role.manager)
MANAGER_ROLES = (Role.manager,)
ESCALATION_HANDLERS = (Role.manager, Role.rounder)


# Accessors are async: a plain `def` dependency would run in FastAPI's thread pool, a thread hop per request.
async def get_service(request: Request) -> DeskService:
    return state_value(request.app.state, "desk")


Service = Annotated[DeskService, Depends(get_service)]
Reader = Annotated[Principal, Depends(require(*READ_ROLES))]
DeskWorker = Annotated[Principal, Depends(require(*DESK_ROLES))]
Manager = Annotated[Principal, Depends(require(*MANAGER_ROLES))]
EscalationHandler = Annotated[Principal, Depends(require(*ESCALATION_HANDLERS))]


async def desk_in_scope(request: Request, service: DeskService, principal: Principal, desk_id: str) -> Desk:
    """The desk, after the municipality and ward checks (403 recorded as admin.access_denied)."""
    await principal.check_municipality(request, service.m.code)
    try:
        desk = service.m.desk(desk_id)
    except KeyError:
        raise NotFound(f"窓口 {desk_id} は設定にありません。") from None
    await principal.check_ward(request, desk.ward)
    return desk
