# qa-lookup-deploy — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
LINT_VENV := .venv-lint
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-22s %s\n", $$1, $$2}'

# The local AWS test bed: moto, the cargo-lambda runtime emulator, zig, the AWS CLI.
$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Template linters live apart: checkov pins an older boto3 than moto needs.
$(LINT_VENV)/.installed: requirements-lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-lint.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed $(LINT_VENV)/.installed ## Install the emulator, cargo-lambda, awscli and the linters into project-local virtualenvs

.PHONY: test
test: venv check lint test-bed test-rust test-templates ## Everything: checks, template lint, unit and end-to-end tests
	@echo "make test: all passed"

.PHONY: demo
demo: $(VENV)/.installed ## Both stacks on moto, answered by the real Lambda binary: create, update, a failure that rolls back, delete
	@echo "== building the function and the demo (the first build takes a few minutes)"
	@start=$$(date +%s); \
	$(CARGO) build --quiet -p qa-lookup-functions --bin custom-resources --bin qa-deploy && \
	$(CARGO) build --quiet -p qa-lookup-testbed --bin demo && \
	echo "== built in $$(( $$(date +%s) - start )) s; running" && \
	start=$$(date +%s) && \
	target/debug/demo target/debug/custom-resources && \
	echo "== demo ran in $$(( $$(date +%s) - start )) s"

include mk/*.mk
