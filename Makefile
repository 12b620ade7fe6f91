# Madoguchi: two commands on a fresh machine (Python 3.11, pip, apt).
#   make run   installs what is needed and starts the whole system (data under var/)
#   make test  installs what is needed and runs every test
PYTHON ?= python3.11
UV := .tools/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: install run cluster chaos faults demo test lint fuzz bench bench-national bench-audit-scale profile-commands clean-data system-deps

system-deps:
	@bash scripts/system-deps.sh

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: $(UV) pyproject.toml uv.lock shared/pyproject.toml $(wildcard services/*/pyproject.toml)
	$(UV) sync --python $(PYTHON) --frozen
	@touch $@

install: system-deps .venv/.synced

# the command services (desk, calls) with one worker process per core (MADOGUCHI_API_WORKERS=0)
run: install
	MADOGUCHI_API_WORKERS=$${MADOGUCHI_API_WORKERS:-0} .venv/bin/madoguchi run

# the same system on a loopback cluster: 3 NATS nodes (JetStream R3, TLS from a CA generated under
# var/cluster/tls) and PostgreSQL primary + streaming standby; Ctrl-C stops it all (data kept)
cluster: install
	MADOGUCHI_DATA_DIR=$${MADOGUCHI_DATA_DIR:-var/cluster} .venv/bin/madoguchi run --cluster

# faults under a simulated day's load through the APIs on a loopback cluster (NATS leader and follower,
# a desk replica and the reporting worker killed with -9, the PostgreSQL standby promoted), then
# report verify and audit verify, and a table of what clients saw (several minutes; CHAOS_ARGS=--help)
chaos: install
	.venv/bin/python -m madoguchi_sim.chaos $(CHAOS_ARGS)

# kill -9 of each child of `madoguchi run` (desk, calls, reporting, audit, nats-server, PostgreSQL), then in a second
# run PostgreSQL dead (stopped) for 30 s, while calls and tickets come in through the APIs: the reports and the
# audit log count each exactly once (~5 minutes)
faults: install
	.venv/bin/pytest -q -p no:cacheprovider --timeout 1100 faults

# a living day at Sapporo's desks and phone line (DEMO_SPEED=51: a day in about 14 minutes)
demo: install
	bash scripts/demo.sh

# the lint and type gate first (a minute), then every test in TEST_WORKERS processes (pytest-xdist: whole
# modules to each, each with its own nats-server and PostgreSQL; the root conftest.py says what runs where)
TEST_WORKERS ?= 2
test: lint
	.venv/bin/pytest -q -p no:cacheprovider -n $(TEST_WORKERS)

# the API contract test (tests/test_api_contract.py: schemathesis over every service's OpenAPI, real services)
# with many more cases per operation than `make test` and a new seed each run; prints the figures per service
FUZZ_EXAMPLES ?= 50
fuzz: install
	CONTRACT_MAX_EXAMPLES=$(FUZZ_EXAMPLES) CONTRACT_SEED= .venv/bin/pytest -q -p no:cacheprovider -s --timeout 3600 \
		tests/test_api_contract.py

# ruff's lint rules and pyright's type check, both configured in pyproject.toml; any type error fails
lint: install
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/pyright

# the bench's own dependencies (the pyeventsourcing peer) on top: `make test` leaves them in place
bench: install
	$(UV) sync --python $(PYTHON) --frozen --group bench --inexact
	.venv/bin/python -m bench.run $(BENCH_ARGS)

# where a desk and a calls command spend their time: cProfile of the bench's command servers under wrk
profile-commands: install
	.venv/bin/python -m bench.profile_command $(PROFILE_ARGS)

# the national peak day (15 million events) on this machine, from a slice of NATIONAL_EVENTS
NATIONAL_EVENTS ?= 1000000
bench-national: install
	.venv/bin/python -m bench.national --events $(NATIONAL_EVENTS)

# auditors' pages and exports at 100 k and 1 M records (AUDIT_SCALE_SIZES=100000,1000000,10000000 for 10 M)
AUDIT_SCALE_SIZES ?= 100000,1000000
bench-audit-scale: install
	.venv/bin/python services/audit/bench_audit_scale.py bench-audit-scale.json --sizes $(AUDIT_SCALE_SIZES)

clean-data:
	rm -rf var
