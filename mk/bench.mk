# make bench: qa-deploy seed against aws s3 sync, side by side (not part of make test).
BENCH_TOOLS := .bench-tools
S3S_FS := $(BENCH_TOOLS)/bin/s3s-fs
RUNS ?= 5

# A fast S3 server in Rust, so the benchmark does not measure moto.
$(S3S_FS):
	$(CARGO) install s3s-fs --version 0.14.1 --features binary --locked --root $(BENCH_TOOLS)

.PHONY: bench
bench: $(VENV)/.installed $(S3S_FS) ## Seed benchmark against aws s3 sync on moto and s3s-fs (release build; RUNS=5)
	$(CARGO) build --release --bin qa-deploy -p qa-lookup-functions
	$(VENV)/bin/python bench/seed_bench.py --qa-deploy target/release/qa-deploy --s3s-fs $(S3S_FS) --runs $(RUNS)
