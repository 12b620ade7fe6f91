"""The busiest command routes served without FastAPI's per-request machinery (issue 19).

FastAPI solves a route's dependency tree anew on every request (for a desk command five nested
`solve_dependencies` calls: the route, the service accessor, the role check, the principal and the
bearer scheme) and serialises the answer through the response model: about a fifth of a command's
CPU time. `HotRoute` is an APIRoute documented exactly as declared (OpenAPI, parameters, security)
whose handler, for the common request, calls the same dependencies and the same endpoint directly:

- the route's shape is checked once, when the route is built: path parameters of type `str`, at most
  one JSON body model, `Request`, and dependencies that are async functions of the request and of
  other such dependencies (the service accessors, `auth.require(...)`, the bearer scheme). A route of
  any other shape is served by FastAPI's own handler, unchanged;
- per request, anything off the common path goes to FastAPI's own handler, which answers it as
  before: dependency overrides (tests), a body that is not JSON or does not validate (FastAPI
  builds the 422), a response model other than `dict`;
- each dependency is called once per request (FastAPI's cache), in the order FastAPI calls them;
  an exception they raise (401, 403 with its recorded event) is handled by the app's exception
  handlers as before;
- a `dict` answer is encoded once with pydantic-core's JSON encoder (what FastAPI's `dict` response
  model does after validating a dict as a dict).

    router = APIRouter(prefix="/v1/desks", route_class=HotRoute)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
from fastapi import Request, Response
from fastapi.datastructures import Default
from fastapi.responses import JSONResponse
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic_core import to_json

JSON = "application/json"
DEFAULT_RESPONSE = Default(JSONResponse)


@dataclass
class _Call:
    """A dependency (or the endpoint) and how to get each of its arguments."""

    call: Callable[..., Any]
    name: str | None = None  # the parameter it fills in its parent
    request_name: str | None = None
    path: list[str] = field(default_factory=list[str])
    body: tuple[str, type[BaseModel]] | None = None
    dependencies: list[_Call] = field(default_factory=list["_Call"])
    cache: bool = True


def _is_async(call: Any) -> bool:
    """An `async def` function, or an object whose class's `__call__` is one (a security scheme)."""
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
    return inspect.iscoroutinefunction(target) and not inspect.isasyncgenfunction(target)


def _plan(dependant: Dependant, *, top: bool) -> _Call | None:
    """How to call `dependant` without FastAPI's solver, or None when its shape is not the simple one."""
    if dependant.call is None or not _is_async(dependant.call):
        return None
    if dependant.query_params or dependant.header_params or dependant.cookie_params:
        return None
    unsupported = (
        dependant.websocket_param_name,
        dependant.request_param_name and dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(unsupported):
        return None
    request_name = dependant.request_param_name or dependant.http_connection_param_name  # e.g. HTTPBearer's
    plan = _Call(dependant.call, dependant.name, request_name, cache=dependant.use_cache)
    if dependant.path_params and not top:
        return None
    for param in dependant.path_params:
        if param.field_info.annotation is not str or param.alias != param.name:
            return None
        plan.path.append(param.name)
    if dependant.body_params:
        model = dependant.body_params[0].field_info.annotation
        if not top or len(dependant.body_params) > 1 or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        plan.body = (dependant.body_params[0].name, model)
    for sub in dependant.dependencies:
        sub_plan = _plan(sub, top=False)
        if sub_plan is None or sub_plan.name is None:
            return None
        plan.dependencies.append(sub_plan)
    return plan


async def _solve(plan: _Call, request: Request, values: dict[str, Any], solved: dict[Any, Any]) -> None:
    """Fill `values` with `plan`'s dependencies, each called once per request (`solved`)."""
    for dep in plan.dependencies:
        if dep.cache and dep.call in solved:
            values[dep.name] = solved[dep.call]  # type: ignore[index] - a sub-dependency always has a name (_plan)
            continue
        args: dict[str, Any] = {}
        if dep.request_name:
            args[dep.request_name] = request
        await _solve(dep, request, args, solved)
        value = solved[dep.call] = await dep.call(**args)
        values[dep.name] = value  # type: ignore[index] - a sub-dependency always has a name (_plan)


def _json_body(request: Request) -> bool:
    content_type = request.headers.get("content-type", "")
    main = content_type.split(";", 1)[0].strip().lower()
    return main == JSON or (main.startswith("application/") and main.endswith("+json"))


class HotRoute(APIRoute):
    """An APIRoute served by a direct call of its dependencies and endpoint when it can be (see above)."""

    hot: bool = False  # served by the direct handler (else FastAPI's own: the route's shape is not the simple one)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        route: Any = self
        context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        if context is not None and getattr(context, "original_route", None) is self:
            route = context  # as included under a prefix, with the including router's dependencies
        plan = _plan(route.dependant, top=True)
        if (
            plan is None
            or route.response_model not in (None, dict)
            or getattr(route, "is_sse_stream", False)
            or getattr(route, "is_json_stream", False)
            or getattr(route, "_embed_body_fields", False)
            or route.response_class not in (JSONResponse, DEFAULT_RESPONSE)
        ):
            return standard
        self.hot = True
        overrides = route.dependency_overrides_provider
        status = route.status_code or 200
        endpoint = plan.call

        async def handler(request: Request) -> Response:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return await standard(request)
            values: dict[str, Any] = {}
            if plan.body is not None:
                if not _json_body(request):
                    return await standard(request)
                try:
                    values[plan.body[0]] = plan.body[1].model_validate(await request.json())
                except ValueError:  # not JSON, or not valid: FastAPI's own handler makes the 422
                    return await standard(request)
            path_params = request.path_params
            for name in plan.path:
                values[name] = path_params[name]
            if plan.request_name:
                values[plan.request_name] = request
            await _solve(plan, request, values, {})
            answer = await endpoint(**values)
            if isinstance(answer, Response):
                return answer
            return Response(to_json(answer), status_code=status, media_type=JSON)

        handler.__name__ = f"hot_{getattr(endpoint, '__name__', 'endpoint')}"
        return handler


__all__ = ["HotRoute"]
