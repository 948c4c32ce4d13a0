# Two commands on a fresh machine: `make dev` and `make test`.
# (`make venv` only creates .venv and installs: `.venv/bin/recoveryctl dev --port …` then works.)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Options for `recoveryctl dev`, e.g. make dev DEV_ARGS="--port 7244 --ui-port 8244"
DEV_ARGS ?=

.PHONY: venv dev test bench typecheck screenshots hostile-doc config-doc clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

dev: $(STAMP)
	$(BIN)/recoveryctl dev $(DEV_ARGS)

test: $(STAMP)
	scripts/ensure-debian-packages redis-server docker-compose chromium prometheus-alertmanager prometheus
	$(BIN)/mypy workflows activities recovery_breakers starter enhanced_agent_bus worker.py bench tests
	$(BIN)/python -m pytest

typecheck: $(STAMP)
	$(BIN)/mypy workflows activities recovery_breakers starter enhanced_agent_bus worker.py bench tests

bench: $(STAMP)
	$(BIN)/python -m bench

# docs/web-ui.md's pictures, from a private dev server and headless Chromium (apt: chromium).
screenshots: $(STAMP)
	$(BIN)/python scripts/web_ui_screenshots.py

# docs/hostile-input.md from a full run of the hostile-input table (make test only prints it).
hostile-doc: $(STAMP)
	RECOVERY_HOSTILE_DOC=write $(BIN)/python -m pytest -n 0 tests/reliability/test_hostile_input.py

# docs/configuration.md's table of RECOVERY_* variables, from activities/settings.py's model.
config-doc: $(STAMP)
	$(BIN)/python -m activities.settings_doc

clean:
	rm -rf $(VENV) .recovery build *.egg-info
