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

.PHONY: test test-lines test-rust-built test-rust-run test-python-line
test: ## Everything: checks, template lint, unit and end-to-end tests
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-lines
	@echo "make test: all passed"

# Two lines side by side, each target's output printed whole when it ends: the Rust line
# (fmt, the test build linted by clippy, then the tests, once the emulator is installed) and the Python
# line (the virtualenvs, template lint, the bed's own tests, the template tests). The compiler
# keeps the cores busy while pip downloads and the end-to-end tests wait on the bed's clocks.
test-lines: test-rust-run test-python-line
test-rust-built:
	@$(MAKE) --no-print-directory check
test-rust-run: test-rust-built $(VENV)/.installed
	@$(MAKE) --no-print-directory test-rust
# In order: the template tests use the Guard rules that lint installs.
test-python-line: venv
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test-bed
	@$(MAKE) --no-print-directory test-templates

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
