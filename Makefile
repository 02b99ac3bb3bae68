# sethub: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# python3.12 as on PATH, else a pyenv-installed 3.12 (the pyenv shim may exist without it).
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
SAM_VENV := .venv-sam
# Only what AWS's Lambda Python runtime ships (requirements-runtime.txt): the built handlers are
# imported with it, their folder and their layer (devstack/artifact.py).
RUNTIME_VENV := .venv-runtime
BIN := $(VENV)/bin
SAM := $(SAM_VENV)/bin/sam
REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
# sam build finds python3.12 on PATH.
PYTHON_DIR = $(shell dirname "$$(command -v $(PYTHON))")
TEST_MYPY_FLAGS := --allow-untyped-defs --allow-incomplete-defs --no-warn-return-any

.PHONY: help venvs local test pytest test-sam lint typecheck template bench mutation build deploy clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements-dev.txt layers/shared/requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.12 is required (install it, or set PYTHON=/path/to/python3.12)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	@touch $@

# Made afresh whenever its requirements change, so nothing else ever lingers in it; wheels only,
# so CI compiles nothing.
$(RUNTIME_VENV)/.installed: requirements-runtime.txt
	@test -n "$(PYTHON)" || { echo "python3.12 is required (install it, or set PYTHON=/path/to/python3.12)"; exit 1; }
	rm -rf $(RUNTIME_VENV) && $(PYTHON) -m venv $(RUNTIME_VENV)
	$(RUNTIME_VENV)/bin/python -m pip install --quiet --only-binary :all: -r requirements-runtime.txt
	@touch $@

local: $(BIN)/.installed $(if $(filter sam,$(SETHUB_LOCAL_FUNCTIONS)),$(SAM_VENV)/.installed) ## run the whole service on this machine (moto, API on :$${PORT:-3000})
	$(BIN)/python -m devstack

lint: $(BIN)/.installed ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed ## mypy, strict
	$(BIN)/mypy layers/shared/sethub functions devstack bench tools
	@# Tests too, but pytest fixtures as parameters need no annotations; e2e runs on its own
	@# because both test roots have a conftest module.
	$(BIN)/mypy $(TEST_MYPY_FLAGS) tests/unit tests/integration tests/conftest.py
	$(BIN)/mypy $(TEST_MYPY_FLAGS) tests/e2e

template: $(BIN)/.installed $(SAM_VENV)/.installed $(RUNTIME_VENV)/.installed ## sam validate --lint, cfn-lint, a sam build into a scratch folder, its handlers imported in the Lambda runtime, its layer's bytecode checked
	$(SAM) validate --lint --template template.yaml --region $(REGION)
	$(BIN)/cfn-lint template.yaml
	@# From the scratch folder: sam build keeps dependencies in ./.aws-sam/deps, which a
	@# concurrent `sam build` in the checkout (make build, the sam local stack) also uses.
	@# Built with Ingress=http, which deploys every function the default does plus the HTTP API's
	@# authorizer, so the import check below covers every handler either choice deploys.
	@# Every build makes the layer for x86_64 and arm64 (Architecture picks one at deploy): the
	@# x86_64 one is imported below; the arm64 one cannot run here, so its wheels' tags are read
	@# (pure or aarch64, one aarch64 at least: cryptography).
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	  (cd "$$scratch" && PATH="$(PYTHON_DIR):$$PATH" $(CURDIR)/$(SAM) build --template $(CURDIR)/template.yaml \
	    --parameter-overrides Ingress=http --build-dir build --cache-dir cache >log 2>&1) || { cat "$$scratch/log"; exit 1; }; \
	  for layer in SharedLayer:x86_64 SharedLayerArm64:aarch64; do \
	    name=$${layer%:*} machine=$${layer#*:}; \
	    test -f "$$scratch/build/$$name/python/sethub/dispatch.py" || { echo "sam build: $$name lacks sethub"; exit 1; }; \
	    wheels=$$(cat "$$scratch/build/$$name"/python/*.dist-info/WHEEL | sed -n 's/^Tag: //p' | sort -u); \
	    foreign=$$(grep -v -e '^$$' -e '-any$$' -e "_$$machine$$" <<<"$$wheels" | tr '\n' ' '); \
	    test -z "$$foreign" || { echo "sam build: $$name has wheels for another machine than $$machine: $$foreign"; exit 1; }; \
	    grep -q "_$$machine$$" <<<"$$wheels" || { echo "sam build: $$name has no $$machine wheel"; exit 1; }; \
	  done; \
	  echo "sam build: ok (layers x86_64 and arm64, their wheels of that machine or pure)"; \
	  $(BIN)/python -m devstack.artifact "$$scratch/build" --python $(RUNTIME_VENV)/bin/python --parameter Ingress=http

venvs: $(BIN)/.installed $(SAM_VENV)/.installed $(RUNTIME_VENV)/.installed ## the virtualenvs: dev, SAM CLI, Lambda runtime

test: venvs ## everything CI runs: lint, types, template checks, every test
	@# Independent of each other, so side by side: the tests spend much of their time waiting
	@# on stacks and subscribers, which the static checks fill.
	$(MAKE) --no-print-directory -j4 lint typecheck template pytest

pytest: $(BIN)/.installed ## every test (unit, integration on moto, e2e against local stacks)
	@# Three workers on two cores, for the same reason.
	$(BIN)/python -m pytest -n 3

# The functions in the Lambda emulator need a Docker daemon and the Lambda Python image:
# .ci/run provides both (README, "With Docker and the SAM CLI").
test-sam: $(BIN)/.installed $(SAM_VENV)/.installed ## the e2e tests that matter, with the functions in sam local (needs Docker)
	@docker image inspect public.ecr.aws/lambda/python:3.12 >/dev/null 2>&1 || { \
	  echo "test-sam needs a Docker daemon and the image public.ecr.aws/lambda/python:3.12 (.ci/lambda-runtime provides both)"; exit 1; }
	@# One stack after the other: each starts a container per function. The first start may
	@# build sam's image of the layer, hence the longer timeout.
	SETHUB_LOCAL_FUNCTIONS=sam $(BIN)/python -m pytest -m sam --timeout 600 tests/e2e

bench: $(BIN)/.installed $(SAM_VENV)/.installed ## the benchmarks, printed as one table (and docs/benchmarks.md)
	$(BIN)/python -m bench

$(BIN)/.mutation-installed: $(BIN)/.installed requirements-mutation.txt
	$(BIN)/python -m pip install --quiet -r requirements-mutation.txt
	@touch $@

# Not part of `make test` nor CI: under half an hour on two cores. WORKERS=1 leaves a core free;
# MODULES="netguard delivery" tests those modules' mutants only (the others keep their last results);
# a module in a subpackage is named dotted or as its path below sethub: credentials.checker or credentials/checker.
mutation: $(BIN)/.mutation-installed ## mutation testing of the core modules with mutmut (docs/mutation.md)
	$(BIN)/python tools/mutation.py run --workers $${WORKERS:-2} $(foreach module,$(MODULES),--module $(module))

build: $(SAM_VENV)/.installed ## sam build (no Docker needed), the layer's bytecode included
	@# The layer's Makefile compiles it (layers/shared/Makefile): sam build alone ships it too.
	@# Both layers, x86_64 and arm64: the Architecture a deploy is given picks one (template.yaml).
	PATH="$(PYTHON_DIR):$$PATH" $(SAM) build --template template.yaml

# The first deploy from a checkout is guided (it asks for the parameters and saves them in
# samconfig.toml); later ones reuse them. GUIDED=1 asks again.
DEPLOYED_MARK := .aws-sam/.deployed

deploy: build ## sam deploy with samconfig.toml's defaults (--guided on first use, or GUIDED=1)
	@if [ -f $(DEPLOYED_MARK) ] && [ -z "$(GUIDED)" ]; then $(SAM) deploy; else $(SAM) deploy --guided; fi
	@touch $(DEPLOYED_MARK)

clean: ## remove build output and virtualenvs
	rm -rf .aws-sam $(VENV) $(SAM_VENV) $(RUNTIME_VENV)
