# Two entry points do all set-up on a fresh machine: `make test` and `make local`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint unit install clean

$(STAMP): requirements/dev.txt requirements/functions.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(STAMP)
	$(BIN)/pytest tests/unit

test: lint $(STAMP)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
