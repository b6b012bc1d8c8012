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
# The end-to-end tests spend most of their time waiting on the bed's clocks, not on a core.
TEST_THREADS ?= 4

test-rust: $(VENV)/.installed ## Unit tests and the end-to-end tests (tests/end_to_end/) on moto and the runtime emulator
	$(CARGO) test --workspace --all-features -- --test-threads=$(TEST_THREADS)

