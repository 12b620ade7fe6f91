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

`HotDispatch` (installed by madoguchi_shared.web.ServiceApp) also skips the way to the route: the
router tries every included router's routes in turn and wraps the chosen one in its own ASGI app (two
exit stacks, an exception wrapper of its own). It sits right inside the app's ExceptionMiddleware and
serves a request by the first of the app's leading routes that matches it (the router's own order;
the leading routes are the hot ones of the `first` routers and literal paths such as /openapi.json),
so it picks the route the router would pick; an exception reaches the same exception handlers. A
request that matches none of them, or that the direct call hands back (the 422s, dependency
overrides), goes to the router with the body it read replayed. Measured with `make bench` (issue
19): desk server CPU per command 0.64 -> 0.52 ms in a back-to-back pair (`--only desk_api`).
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
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send
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

        async def fast(request: Request) -> Response | None:
            """The answer by the direct call, or None: FastAPI's own handler answers this request."""
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return None
            values: dict[str, Any] = {}
            if plan.body is not None:
                if not _json_body(request):
                    return None
                try:
                    values[plan.body[0]] = plan.body[1].model_validate(await request.json())
                except ValueError:  # not JSON, or not valid: FastAPI's own handler makes the 422
                    return None
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

        async def handler(request: Request) -> Response:
            response = await fast(request)
            return response if response is not None else await standard(request)

        route.hot_fast = fast  # for HotDispatch: on the route as included (its effective context), else the route
        handler.__name__ = f"hot_{getattr(endpoint, '__name__', 'endpoint')}"
        return handler


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the app's root_path (starlette's get_route_path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


@dataclass
class _Entry:
    """One route of the app's leading routes: a hot one (served directly), or a literal path (never served
    here: a request for it goes to the router, which would match it before any later route)."""

    literal: str | None
    regex: Any = None
    methods: frozenset[str] = frozenset()
    convertors: dict[str, Any] = field(default_factory=dict[str, Any])
    fast: Callable[[Request], Coroutine[Any, Any, Response | None]] | None = None
    route: Any = None


def _entries(router: Any) -> list[_Entry]:
    """The router's routes in its matching order, up to the first that is neither hot nor a literal path.
    A request matching none of these is the router's: FastAPI tries routes in order, the first match wins,
    so serving a request here by the first entry that matches it is what the router would do."""
    out: list[_Entry] = []

    def leaves(routes: Any) -> Any:
        for r in routes:
            contexts = getattr(r, "effective_route_contexts", None)
            if contexts is not None:  # a router included with a prefix (FastAPI 0.16x)
                yield from contexts()
            else:
                yield r

    for leaf in leaves(router.routes):
        fast = getattr(leaf, "hot_fast", None)
        original = getattr(leaf, "original_route", leaf)
        path_format = getattr(leaf, "path_format", None)
        if fast is not None and isinstance(original, HotRoute) and getattr(leaf, "max_body_size", None) is None:
            out.append(
                _Entry(
                    None,
                    leaf.path_regex,
                    frozenset(leaf.methods or ()),
                    dict(leaf.param_convertors),
                    fast,
                    original,
                )
            )
        elif isinstance(path_format, str) and "{" not in path_format and not isinstance(leaf, Mount):
            out.append(_Entry(path_format))
        else:
            break
    return out


class HotDispatch:
    """The app's hot routes served without the router (route matching across every included router, the
    route's ASGI wrapper with its two exit stacks and its own exception wrapper): installed inside the
    app's ExceptionMiddleware, so an exception a direct call raises gets the app's handlers as before.
    Anything else, or a request the direct call hands back, goes to `app` (the router)."""

    def __init__(self, app: ASGIApp, router: Any):
        self.app = app
        self.router = router
        self.table: list[_Entry] | None = None
        self.served = 0  # requests answered here, by an answer or an exception (for tests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        table = self.table
        if table is None:
            table = self.table = _entries(self.router)
        path = _route_path(scope)
        for entry in table:
            if entry.literal is not None:
                if entry.literal == path:
                    break
                continue
            match = entry.regex.match(path)
            if match is None:
                continue
            if scope["method"] not in entry.methods or entry.fast is None:
                break  # the router answers (405, or a later route of the same path)
            await self._serve(entry, match.groupdict(), scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _serve(self, entry: _Entry, params: dict[str, Any], scope: Scope, receive: Receive, send: Send) -> None:
        assert entry.fast is not None
        for key, value in params.items():
            params[key] = entry.convertors[key].convert(value)
        scope["path_params"] = params
        scope["route"] = entry.route
        scope["endpoint"] = entry.route.endpoint
        scope.setdefault("router", self.router)
        received: list[Message] = []

        async def recording() -> Message:
            message = await receive()
            received.append(message)
            return message

        self.served += 1
        response = await entry.fast(Request(scope, recording, send))
        if response is None:  # FastAPI's own handler answers: through the router, with the body read so far
            self.served -= 1

            async def replay() -> Message:
                return received.pop(0) if received else await receive()

            await self.app(scope, replay, send)
            return
        await response(scope, receive, send)


def install(stack: ASGIApp, router: Any) -> HotDispatch | None:
    """Put a HotDispatch in front of `router` inside the app's middleware `stack` (FastAPI's
    build_middleware_stack result): right inside its ExceptionMiddleware. None if there is none."""
    layer: Any = stack
    while layer is not None:
        if isinstance(layer, ExceptionMiddleware):
            dispatch = HotDispatch(layer.app, router)
            layer.app = dispatch
            return dispatch
        layer = getattr(layer, "app", None)
    return None


__all__ = ["HotDispatch", "HotRoute", "install"]
