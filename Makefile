# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tools built from Go modules (sandbox control planes, tofu, the Scaleway provider, sops, promtool,
# external-dns, traefik) are
# cached outside git in $(K3SMIG_CACHE), shared by every clone through the .cache link, and found first.
K3SMIG_CACHE ?= $(HOME)/.cache/k3smig
export PATH := $(CURDIR)/.cache/tools/bin:$(PATH)

.PHONY: demo-live integration sandbox-up sandbox-down demo lab test check lock unit notebooks-test lint golden notebooks bench system-deps clean-runs help

help:
	@echo "make demo   - install into .venv and run the ten phases on the bundled example"
	@echo "make lab    - open the notebooks in JupyterLab on 127.0.0.1"
	@echo "make check  - the fast tier for contributors: ruff, mypy, import-linter, unit tests"
	@echo "make test   - install everything the tests need, then run lint and the whole test suite"
	@echo "make golden - regenerate the golden executed notebooks (review the diff)"
	@echo "make lock   - refresh constraints.txt from pyproject.toml (review the diff)"

.cache:
	mkdir -p $(K3SMIG_CACHE)
	ln -sfn $(K3SMIG_CACHE) .cache

# Installs the versions of constraints.txt (the lock), so a fresh machine gets what the tests passed with.
$(STAMP): pyproject.toml constraints.txt | .cache
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Refresh the lock: resolve pyproject.toml afresh in a throw-away virtualenv, write what it installed.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet '.[dev]'
	$(LOCK_VENV)/bin/python scripts/write_lock.py $(LOCK_VENV)/bin/python
	rm -rf $(LOCK_VENV)
	@echo "review git diff constraints.txt, then make check"

# The README goes on with `k3smig …`: when the command found on PATH is not this clone's, say where it is
# (after the demo, whatever its exit code, which stays make's).
demo: $(STAMP)
	@$(BIN)/k3smig demo; rc=$$?; \
	  [ "$$(command -v k3smig)" -ef $(BIN)/k3smig ] || \
	  echo "k3smig is in $(BIN): run \`. $(BIN)/activate\` (then \`k3smig …\`) or \`$(BIN)/k3smig …\`"; \
	  exit $$rc

# JupyterLab on the notebooks, listening on 127.0.0.1 only. Jupyter refuses to start as root without
# --allow-root (containers, a root shell on a VM): it is passed then, and only then.
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root)

system-deps:
	bash scripts/install-system-deps.sh
	bash tools/build-sops.sh
	bash tools/build-promtool.sh
	bash tools/build-infra.sh
	bash tests/infra/molecule-image.sh
	bash tools/build-sandbox.sh
	bash tools/build-external-dns.sh
	bash tools/build-traefik.sh

lint: $(STAMP)
	$(BIN)/ruff check k3smig_lib tests scripts examples
	$(BIN)/mypy
	$(BIN)/mypy --strict examples/generate.py examples/_gen
	$(BIN)/lint-imports

NBVAL := --nbval-current-env --nbval-cell-timeout=600

test: $(STAMP) system-deps lint
	K3SMIG_BATCH=1 $(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q --nbval-lax $(NBVAL) notebooks
	K3SMIG_BATCH=1 $(BIN)/python -m pytest -q --nbval $(NBVAL) --nbval-sanitize-with tests/golden/sanitize.cfg tests/golden

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# The fast tier (see CONTRIBUTING.md): lint and unit tests, no cluster. Some unit tests run the real kubectl,
# sops and promtool from the shared tool cache (make system-deps builds them once; a missing one fails and says how).
# `make test` stays the full suite that CI runs.
check: lint unit

notebooks:
	$(BIN)/python scripts/write_notebooks.py

golden: $(STAMP)
	$(BIN)/python scripts/make_golden.py
	K3SMIG_BATCH=1 $(BIN)/python -m pytest -q --nbval $(NBVAL) --nbval-sanitize-with tests/golden/sanitize.cfg tests/golden

# Throughput and memory figures (printed; the clean benchmark also writes .cache/bench/clean.{json,png}, see
# docs/benchmarks.md); the transfer benchmark starts the sandbox clusters.
bench: $(STAMP)
	bash tools/build-sandbox.sh
	$(BIN)/python -m pytest -q -m benchmark tests/benchmarks tests/integration/test_transfer_bench.py -s

integration: $(STAMP)
	bash tools/build-sandbox.sh
	$(BIN)/python -m pytest -q -m integration tests/integration

sandbox-up: $(STAMP)
	bash tools/build-sandbox.sh
	$(BIN)/k3smig sandbox up

# The ten phases against the sandbox clusters (started for the run, stopped after it).
# The cutover runs against the sandbox's network stand: knotd (TSIG), real external-dns on both clusters,
# Traefik per cluster; its TSIG secret goes to the run only through the environment.
SANDBOX_STATE := .cache/sandbox/state
demo-live: $(STAMP)
	bash tools/build-sandbox.sh
	bash tools/build-external-dns.sh
	bash tools/build-traefik.sh
	$(BIN)/k3smig sandbox up --network || { $(BIN)/k3smig sandbox down; exit 1; }
	K3SMIG_DNS_TSIG_SECRET=$$(cat $(SANDBOX_STATE)/dns/tsig.secret) $(BIN)/k3smig run parameters/sandbox.yaml \
	  --overlay $(SANDBOX_STATE)/network.yaml; rc=$$?; $(BIN)/k3smig sandbox down; exit $$rc

sandbox-down: $(STAMP)
	$(BIN)/k3smig sandbox down

clean-runs:
	rm -rf runs targets
