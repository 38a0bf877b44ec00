# Two entry points do all set-up on a fresh machine: `make test` and `make local`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

RUN := PYTHONPATH=src:. $(BIN)/python

.PHONY: test lint typecheck unit integration local demo outbox redrive backtest rotate-key policy layer bench soak resilience fraud-eval install clean

$(STAMP): requirements/dev.txt requirements/functions.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy, strict, on lib/ and src/'s packages (pyproject.toml [tool.mypy] says what and how).
typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Against the local pipeline by default; TAP_INTEGRATION_TARGET=deployed uses cfn-outputs/flat-outputs.json.
integration: $(STAMP)
	$(BIN)/pytest tests/integration

# The whole pipeline on this machine, built from the Pulumi program (Ctrl-C stops it).
local: $(STAMP)
	$(RUN) -m tap_local up

demo: $(STAMP)
	$(RUN) -m tap_local demo

outbox: $(STAMP)
	$(RUN) -m tap_local outbox

# Replay dead letters of a running `make local`: FROM=parking (default) or transaction-dlq.
redrive: $(STAMP)
	$(RUN) -m tap_local redrive --from $(or $(FROM),parking)

# Rotate the card-fingerprint key of a running `make local` (Secrets Manager's four rotation steps,
# run by the stack's rotation function); SWITCH_DELAY=<seconds> shortens the 10-minute switch delay.
rotate-key: $(STAMP)
	$(RUN) -m tap_local rotate-key $(if $(SWITCH_DELAY),--switch-delay $(SWITCH_DELAY),)

# Re-score a merchant's recorded transactions under proposed rules; writes nothing. E.g.
# make backtest MERCHANT=test-merchant-001 OVERRIDES='{"velocity_1m": {"threshold": 3}}' [THRESHOLD=40]
backtest: $(STAMP)
	$(RUN) -m tap_local backtest --merchant $(MERCHANT) $(if $(OVERRIDES),--overrides '$(OVERRIDES)',) \
		$(if $(THRESHOLD),--flag-threshold $(THRESHOLD),) $(if $(SINCE),--since $(SINCE),) $(if $(UNTIL),--until $(UNTIL),)

# Default fraud rules on seeded labelled traffic (FRAUD.md): FRAUD_MODE=quick for the small plan (CI's
# check); HTTP=1 runs 20 minutes of traffic in real time against the running `make local`.
fraud-eval: $(STAMP)
	$(RUN) -m fraud_eval $(if $(FRAUD_MODE),--mode $(FRAUD_MODE),) $(if $(HTTP),--http cfn-outputs/flat-outputs.json,)

test: lint typecheck $(STAMP)
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .local cfn-outputs

# The functions' pinned dependencies as a Lambda layer (build/lambda-layer); needed before `pulumi up`.
layer: $(STAMP)
	$(RUN) -m lib.layer

# The security baseline (lib/policy) against the stack as it would deploy.
policy: $(STAMP)
	$(RUN) -m lib.policy

# Benchmarks (BENCHMARKS.md): BENCH_MODE=quick only checks they run (what CI does).
bench: $(STAMP)
	$(RUN) -m bench $(if $(BENCH_MODE),--mode $(BENCH_MODE),)

# Soak: N transactions (default 10000) through a fresh local pipeline over HTTP; rewrites BENCHMARKS.md
# section 4 and bench/soak.png. ATTACH=1 uses the running `make local` instead.
soak: $(STAMP)
	$(RUN) -m bench.soak --transactions $(or $(N),10000) $(if $(ATTACH),--attach cfn-outputs/flat-outputs.json,)

# Resilience evidence (fuzzing, fault injection, load, card-data scan); RESILIENCE_MODE=long for the full run.
resilience: $(STAMP)
	$(RUN) -m resilience $(if $(RESILIENCE_MODE),--mode $(RESILIENCE_MODE),)
