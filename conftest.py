"""Session fixtures shared by every test suite: a real nats-server and a real PostgreSQL.

Each test isolates itself with its own municipality code (`municipality` fixture), which is part
of every subject, so tests share the servers without seeing each other's events.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from madoguchi_shared import bus, db, natsauth
from madoguchi_shared.cli import service_factories
from madoguchi_shared.logging import configure
from madoguchi_shared.runtime import PG_TEMPLATE_ENV, NatsServer, PostgresServer, initdb_template
from tests.utils import servers
from tests.utils.servers import make_settings, unique_municipality

configure("WARNING", json_logs=False)

# pytest keeps the last three numbered temp folders under one root per user and deletes older ones
# when a run starts; two checkouts testing at once would delete each other's server data (the
# session's PostgreSQL then crashes). Each checkout gets its own root (short: socket paths), named
# in letters only: the servers' logs quote these paths, and digits in them read together with a pid
# can look like a 12-digit number to the personal-data scan of those logs.
# Four letters: PostgreSQL's socket path (under a test's tmp_path) must stay under 108 bytes.
_checkout = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:4]
_root = Path(tempfile.gettempdir()) / f"mg-{_checkout.translate(str.maketrans('0123456789', 'ghijklmnop'))}"
_root.mkdir(exist_ok=True)
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(_root))


@pytest.hookimpl(tryfirst=True)  # before pytest's tmp_path plugin reads the option
def pytest_configure(config):
    """A worker of a parallel run (pytest-xdist) keeps its temp folders in <run's folder>/<n>, not xdist's
    <run's folder>/popen-gw<n>: eight characters less under every tmp_path, which the socket paths of the
    PostgreSQL servers that tests start (`madoguchi run`, the cluster tests) need."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and config.option.basetemp:
        config.option.basetemp = str(Path(config.option.basetemp).with_name(worker.removeprefix("gw")))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """The session's data folder; its secrets/nats/ holds the bus identities (one per service, admin, ...)."""
    path = tmp_path_factory.mktemp("data")
    natsauth.ensure_embedded(path, sorted(service_factories()))
    return path


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory, data_dir):
    """nats-server with credentials on, as `madoguchi run` starts it: `nats_server.url` carries the
    administrator's user and password (tests publish anything); a service app built from `settings`
    connects as its own identity; `nats_server.address` carries none."""
    server = NatsServer(tmp_path_factory.mktemp("nats"), auth_dir=data_dir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_initdb_template(tmp_path_factory):
    """initdb once for the session: every fresh PostgreSQL after it (this one, each `madoguchi run` on a new data
    folder, the crash tests' own servers) starts from a copy, seconds sooner each (runtime.PG_TEMPLATE_ENV)."""
    root = initdb_template(tmp_path_factory.mktemp("pgtemplate"))
    os.environ[PG_TEMPLATE_ENV] = str(root)
    yield root
    os.environ.pop(PG_TEMPLATE_ENV, None)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory, pg_initdb_template):
    server = PostgresServer(tmp_path_factory.mktemp("pg")).start()
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="session", autouse=True)
async def pg_roles(pg_server, data_dir):
    """One login role per service (mg_reporting, mg_calls, mg_audit) and the migration owner (mg_migrator), as
    `madoguchi run` provisions them, passwords under the data folder's secrets/: services built by the tests
    connect as their role (`tests.utils.servers.as_service`); fixtures that tamper or look as an operator use
    the superuser's `pg_pool`."""
    dsns = await db.provision(pg_server.dsn, data_dir / "secrets", servers.PG_SERVICES)
    servers.SERVICE_DSNS.update(dsns)
    # Each service migrates its own schema at start, as its own role: done once here, so a test that happens to
    # start a service as the superuser first (an operator's view) does not leave tables its role cannot use.
    # The audit schema is migrated by the owner role (mg_migrator) before the service starts, as `make run` does.
    from madoguchi_audit import schema as audit_schema
    from madoguchi_calls import phone_store
    from madoguchi_reporting import schema as reporting_schema

    for service, migrate in (
        ("reporting", reporting_schema.migrate),
        ("calls", lambda c: db.migrate(c, phone_store.SCHEMA, phone_store.MIGRATIONS)),
        ("migrator", lambda c: audit_schema.migrate(c, "audit")),
    ):
        conn = await asyncpg.connect(dsns[service])
        try:
            await migrate(conn)
        finally:
            await conn.close()
    yield dsns
    servers.SERVICE_DSNS.clear()


@pytest.fixture(scope="session")
def settings(nats_server, pg_server, data_dir):
    return make_settings(nats_server, pg_server, data_dir)


@pytest_asyncio.fixture(scope="session")
async def nc(nats_server):
    client = await bus.connect(nats_server.url, name="tests")
    await bus.ensure_streams(client.jetstream())
    yield client
    await client.drain()


@pytest_asyncio.fixture(scope="session")
async def js(nc):
    return nc.jetstream()


@pytest_asyncio.fixture(scope="session")
async def pg_pool(pg_server):
    pool = await db.create_pool(pg_server.dsn, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
def municipality() -> str:
    return unique_municipality()


def pytest_collection_modifyitems(session, config, items):
    """The browser suite's stack (every service, for the whole session) projects and alerts on every
    municipality's events; run after it, other suites' own workers would race it for positions, dead
    letters and alerts. So the browser suite runs last."""
    console = [i for i in items if "services/console/" in i.nodeid]
    items[:] = [i for i in items if "services/console/" not in i.nodeid] + console


# Modules that need the machine's one PC/SC stack (pcscd and vpcd's virtual reader on its fixed port): in a
# parallel run they run in one worker, one after the other.
PCSC_MODULES = ("services/device-agent/tests/test_agent_card_reader.py", "tests/test_e2e_desk_pc_alerts.py")
# Modules whose tests share nothing (no module fixture, no order) and take minutes: each test its own unit, so
# both workers share them.
SPLIT_MODULES = ("tests/test_api_contract.py", "tests/test_run_supervisor.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """A parallel run (`make test`: pytest-xdist, `-n 2`) hands each worker whole modules (a module's tests share
    its fixtures and may build on each other; SPLIT_MODULES test by test), the PC/SC modules as one unit, in
    collection order: each worker has its own nats-server and PostgreSQL (session fixtures), and once a worker
    has started the browser suite, with its own stack, only browser modules are left to hand out (see above).
    Whatever `--dist` says: these are what the suite needs. (pytest-xdist's own `xdist_group` marks do not
    group under pytest 9.2, whose node ids no longer take the group suffix xdist 3.8 writes.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in PCSC_MODULES:
                return "pcsc"
            return nodeid if module in SPLIT_MODULES else module

    config.option.loadscopereorder = False  # collection order: the browser suite last
    return ModuleScheduling(config, log)
