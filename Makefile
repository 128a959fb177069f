# `make demo` and `make test` each set up their own virtual environment first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mentorship validate --config config/cohort.example.yaml
	@echo
	$(BIN)/mentorship plan --config config/cohort.example.yaml --now 2027-02-15T00:00:00+00:00

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/planner.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
