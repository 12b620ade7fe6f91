"""One shape for every service (issue 20 item 3): the same names in the same places, so a reader who knows one
service finds their way in the next. Each test names the convention and fails on the first service off it."""

from __future__ import annotations

import importlib

import pytest
from fastapi import APIRouter

HTTP_SERVICES = ["madoguchi_desk", "madoguchi_calls", "madoguchi_audit", "madoguchi_reporting", "madoguchi_console"]


@pytest.mark.parametrize("package", HTTP_SERVICES)
def test_every_service_exports_its_routers_as_a_routers_function(package):
    api = importlib.import_module(f"{package}.api")
    assert callable(api.routers), f"{package}.api.routers must be a function returning the routers"
    built = api.routers()
    assert built and all(isinstance(router, APIRouter) for router in built)
    assert not hasattr(api, "ROUTERS")
