# make bench: qa-deploy seed against aws s3 sync and rclone, side by side (not part of make test).
BENCH_TOOLS := .bench-tools
S3S_FS := $(BENCH_TOOLS)/bin/s3s-fs
RCLONE := $(BENCH_TOOLS)/usr/bin/rclone
RUNS ?= 5
# The S3 servers bench-seed runs against: fast (s3s-fs) and moto.
SERVERS ?= fast,moto

# A fast S3 server in Rust, so the benchmark does not measure moto.
$(S3S_FS):
	$(CARGO) install s3s-fs --version 0.14.1 --features binary --locked --root $(BENCH_TOOLS)

# What an engineer copying many small files from S3 reaches for: Debian's rclone, unpacked here
# (no root needed).
$(RCLONE):
	mkdir -p $(BENCH_TOOLS)/deb
	cd $(BENCH_TOOLS)/deb && apt-get download rclone
	dpkg -x $(BENCH_TOOLS)/deb/rclone_*.deb $(BENCH_TOOLS)

.PHONY: bench bench-seed bench-lambda bench-publish
bench: bench-seed bench-lambda bench-publish ## bench-seed, bench-lambda and bench-publish

bench-seed: $(VENV)/.installed $(S3S_FS) $(RCLONE) ## Seed benchmark against aws s3 sync and rclone on moto and s3s-fs (release build; RUNS=5, SERVERS=fast,moto)
	$(CARGO) build --release --bin qa-deploy -p qa-lookup-functions
	$(VENV)/bin/python bench/seed_bench.py --qa-deploy target/release/qa-deploy --s3s-fs $(S3S_FS) --rclone $(RCLONE) --runs $(RUNS) --servers $(SERVERS)

bench-lambda: $(VENV)/.installed ## The function's cold start, Create answer and peak RSS per resource type (x86_64 zip's bootstrap, moto)
	$(MAKE) --no-print-directory lambda-zip ARCH=x86_64
	rm -rf target/lambda/bench && $(VENV)/bin/python -m zipfile -e $(LAMBDA_ZIP) target/lambda/bench
	chmod +x target/lambda/bench/bootstrap
	$(VENV)/bin/python bench/lambda_bench.py --bootstrap target/lambda/bench/bootstrap --runs 10

bench-publish: $(VENV)/.installed ## One changed file from publish --stack to every app task verified, beside aws s3 sync (release build, moto; RUNS=5)
	$(CARGO) build --release -p qa-lookup-functions --bin custom-resources --bin qa-deploy
	$(CARGO) build -p qa-lookup-testbed --bin bench-publish
	target/debug/bench-publish target/release/custom-resources target/release/qa-deploy $(RUNS)
