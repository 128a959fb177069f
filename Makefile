# `make demo` and `make test` each set up their own virtual environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

DEMO := out/demo

demo: $(STAMP)
	$(BIN)/mentorship validate --config config/cohort.example.yaml
	@echo
	$(BIN)/mentorship plan --config config/cohort.example.yaml --now 2027-02-01T00:00:00+00:00
	@echo
	rm -rf $(DEMO)
	$(BIN)/mentorship run --config config/cohort.example.yaml --simulate --now 2027-02-01T00:00:00+00:00 \
		--state $(DEMO)/state.sqlite --outbox $(DEMO)/outbox
	$(BIN)/mentorship preview --config config/cohort.example.yaml --now 2027-02-01T00:00:00+00:00 --out $(DEMO)/preview
	@echo
	@echo "Done. The whole program ran on a simulated clock:"
	@echo "  $(DEMO)/outbox/         every email sent, as .eml files (invitations carry .ics requests)"
	@echo "  $(DEMO)/preview/index.html  the same emails to read in a browser"
	@echo "  $(BIN)/mentorship status --config config/cohort.example.yaml --state $(DEMO)/state.sqlite"

# Lint, format and types: what CI checks before the tests.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Unit, use-case and in-memory contract tests: seconds, for the edit-test loop.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not postgres" tests/unit tests/usecases tests/contract

test: $(STAMP)
	@if [ -z "$$MENTORSHIP_TEST_POSTGRES" ]; then scripts/ensure-postgres; fi
	@scripts/ensure-chromium
	@scripts/ensure-dovecot
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/planner.py
	$(BIN)/python bench/google_calls.py
	$(BIN)/python bench/daemon.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
