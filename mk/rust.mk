# The Rust workspace: build, checks, the end-to-end tests and the demo.
CARGO ?= cargo

.PHONY: build
build: ## Build the workspace (debug)
	$(CARGO) build --workspace --all-features

.PHONY: check
check: ## cargo fmt --check and cargo clippy -D warnings, with and without the test-only feature
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

.PHONY: test-bed
test-bed: $(VENV)/.installed ## The test bed's own tests: its CloudFormation against CloudFormation's documented behaviour
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/testbed

.PHONY: test-rust
test-rust: $(VENV)/.installed ## Unit tests and the end-to-end tests (fault matrix) on moto and the runtime emulator
	$(CARGO) test --workspace --all-features

