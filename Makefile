# Two commands on a fresh machine: `make dev` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test bench typecheck clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(BIN)/recoveryctl dev

test: $(STAMP)
	scripts/ensure-debian-packages redis-server docker-compose
	$(BIN)/mypy workflows activities starter enhanced_agent_bus worker.py bench
	$(BIN)/python -m pytest

typecheck: $(STAMP)
	$(BIN)/mypy workflows activities starter enhanced_agent_bus worker.py bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .recovery build *.egg-info
