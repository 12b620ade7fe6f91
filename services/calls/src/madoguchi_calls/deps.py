"""FastAPI dependencies of the calls service, as Annotated aliases.

Roles (ORG-2): operators (and the manager, and the phone system as a service) write calls; the
manager handles escalations to the city and the FAQ; city staff and auditors read, never write.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from madoguchi_calls.service import CallsService
from madoguchi_shared.auth import Principal, require, state_value
from madoguchi_shared.events.base import Role
from madoguchi_shared.web import correlation_id


# Accessors are async: a plain `def` dependency would run in FastAPI's thread pool, a thread hop per request.
async def get_service(request: Request) -> CallsService:
    return state_value(request.app.state, "calls")


async def get_correlation_id(request: Request) -> UUID | None:
    return correlation_id(request)


Service = Annotated[CallsService, Depends(get_service)]
CorrelationId = Annotated[UUID | None, Depends(get_correlation_id)]

# Who records calls: the operators at their seats, the manager, and the phone system (a service
# token) for calls arriving when nobody is seated or after hours.
CallWriter = Annotated[Principal, Depends(require(Role.operator, Role.manager, Role.service))]
# Who works the seats and the callback queue.
Operator = Annotated[Principal, Depends(require(Role.operator, Role.manager))]
# Escalations to the city, cancelling callbacks, the FAQ's content.
Manager = Annotated[Principal, Depends(require(Role.manager))]
# Everyone who may look: the line's staff, the city, the auditors.
Reader = Annotated[
    Principal,
    Depends(require(Role.operator, Role.manager, Role.city_staff, Role.auditor, Role.administrator, Role.rounder)),
]
