# vigil — build, lint and test entry points.
#
#   make test    everything CI runs: formatting, clippy, unit, storage-suite,
#                in-process and multi-process cluster tests
#   make bench   the benchmarks recorded in BENCHMARKS.md (release builds, minutes)
#   make dev     a 3-member cluster on loopback, until Ctrl-C

CARGO ?= cargo

.PHONY: test lint unit bench dev deps

test: deps lint unit

# Everything the tests need beyond the Rust toolchain: the test peers (sushy-emulator
# in a python venv, htpasswd, a test CA) under $VIGIL_PEERS_DIR
# (default ~/.cache/vigil/peers). Idempotent and quiet.
deps:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup first"; exit 1; }
	bash scripts/peers.sh install

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The last lines are the peers tests: the Redfish driver against real sushy-emulators
# (spawned from the venv that `deps` installs) and the ipmitool driver against real
# ipmi_sim BMCs (openipmi, installed by `deps`); the tests spawn and kill their peers.
# `metrics` runs promtool on /metrics, the example config and the alert rules, and a
# real Prometheus scraping an in-process cluster (package prometheus, from `deps`).
unit:
	$(CARGO) test --workspace --lib --bins --tests --locked
	$(CARGO) test --test metrics --locked -- --ignored --test-threads=1
	$(CARGO) test -p vigil-providers --test redfish_sushy --locked -- --ignored --test-threads=2
	$(CARGO) test -p vigil-providers --test ipmi_sim --locked -- --ignored --test-threads=1
	$(CARGO) test -p vigil-providers --test ipmi_native --locked -- --ignored --test-threads=1
	$(CARGO) test -p vigil-providers --test fence_agents --locked -- --ignored --test-threads=2

bench:
	$(CARGO) bench --bench throughput
	$(CARGO) bench --bench failover
	$(CARGO) bench --bench engine
	$(CARGO) bench --bench scale
	$(CARGO) bench --bench ha
	$(CARGO) bench --bench reassign

dev:
	$(CARGO) run --release -- dev
