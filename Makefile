# vigil — build, lint and test entry points.
#
#   make test    everything CI runs: formatting, clippy, unit, storage-suite,
#                in-process and multi-process cluster tests
#   make bench   the benchmarks recorded in BENCHMARKS.md (release builds, minutes)
#   make dev     a 3-member cluster on loopback, until Ctrl-C

CARGO ?= cargo

.PHONY: test lint unit bench dev deps

test: deps lint unit

# Everything the tests need beyond the Rust toolchain. Nothing yet: the BMC emulators
# and Prometheus arrive with the providers and metrics work (scripts/install-peers.sh).
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup first"; exit 1; }

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --lib --bins --tests --locked

bench:
	$(CARGO) bench --bench throughput
	$(CARGO) bench --bench failover
	$(CARGO) bench --bench engine
	$(CARGO) bench --bench scale

dev:
	$(CARGO) run --release -- dev
