# Two commands matter: `make run` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck fmt proto env clean test-services compose-check promtool topology chromium docs settings-reference

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The environment is installed from the lock file only (--frozen: a stale lock is an error),
# with bytecode compiled: every process (the dataflow above all) then starts without compiling
# its imports, which matters where PYTHONDONTWRITEBYTECODE is set.
PACKAGES := core storage operators rollout sinks api orchestrator collector integrations flows proto simulator bench client/llmopt_client
$(VENV)/.synced: $(UV) uv.lock pyproject.toml client/pyproject.toml
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	touch $@

env: $(VENV)/.synced
	$(PY) -m compileall -q $(PACKAGES) > /dev/null

run: env
	$(PY) -m orchestrator

test-services: promtool chromium
	bash scripts/test-services.sh

# Debian's Chromium for the console's browser tests (installed when /usr/bin/chromium is missing).
chromium:
	bash scripts/install-chromium.sh

# promtool from Debian's prometheus package, extracted into .tools/bin (nothing is installed).
promtool:
	bash scripts/install-promtool.sh

# deploy/ without a Docker engine: Compose references, promtool check config/rules, dashboards
# query only exported metrics.
compose-check: env promtool
	$(PY) scripts/compose_check.py

# docs/configuration.md's reference from the settings' fields (core/settings/); a unit test fails
# when the committed page is stale.
settings-reference: env
	$(PY) -m core.settings.reference --write docs/configuration.md

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: env
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The Compose topology as processes on this machine, from deploy/optimizer.env: PostgreSQL (a
# fresh database), Redis, the tansu broker, the orchestrator with two REST workers and the
# processor unsupervised, a 2-process Bytewax cluster; the closed loop, WatchConfig over Redis,
# every Prometheus target, a broker outage during REST ingest (tests/e2e/test_topology.py).
topology: env test-services
	$(VENV)/bin/pytest tests/e2e/test_topology.py -x -q

# The manual as a site (var/site); --strict: a broken link or a page left out of the nav fails.
docs: env
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
test: env test-services lint compose-check docs
	$(VENV)/bin/pytest tests --durations=25

proto: env
	$(PY) -m proto.generate
	$(PY) -m proto.client_descriptor

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .mypy_cache .ruff_cache
