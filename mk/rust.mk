# The Rust workspace: build, checks, the end-to-end tests and the demo.
CARGO ?= cargo

.PHONY: build
build: ## Build the workspace (debug)
	$(CARGO) build --workspace --all-features

# Clippy as the compiler of the workspace's own crates (clippy's README, "Using Clippy as a rustc
# wrapper"): the test build lints our code while it compiles it, so the dependencies are built
# once, not checked once for clippy and built again for the tests. CLIPPY_ARGS carries the lint
# levels, as `cargo clippy` passes them to clippy-driver. Every cargo command that shares the test
# build's artifacts runs with it. The shipped code without the test-only feature is linted as a
# test build too: the tests' SDK features (test-util) then stay the same, so the SDK crates are
# not built a second time.
LINTED = RUSTC_WORKSPACE_WRAPPER="$$(rustc --print sysroot)/bin/clippy-driver" CLIPPY_ARGS=-Dwarnings

.PHONY: check
check: ## cargo fmt --check; clippy -D warnings on every target with the test-only feature and on the shipped binaries without it
	$(CARGO) fmt --all -- --check
	$(LINTED) $(CARGO) test --workspace --all-features --no-run
	$(LINTED) $(CARGO) test -p qa-lookup-functions --no-run

.PHONY: test-bed
test-bed: $(VENV)/.installed ## The test bed's own tests: its CloudFormation against CloudFormation's documented behaviour
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/testbed

.PHONY: test-rust
# The end-to-end tests spend most of their time waiting on the bed's clocks, not on a core.
TEST_THREADS ?= 4

test-rust: $(VENV)/.installed ## Unit tests and the end-to-end tests (tests/end_to_end/) on moto and the runtime emulator
	$(LINTED) $(CARGO) test --workspace --all-features -- --test-threads=$(TEST_THREADS)

