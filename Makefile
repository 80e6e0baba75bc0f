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

# After the workspace tests come the peer tests, each against real software nobody on
# this project wrote, installed by `deps` and spawned/killed by PID by the tests:
# promtool and a Prometheus server (metrics), sushy-emulator (Redfish driver), OpenIPMI
# ipmi_sim (native IPMI and ipmitool drivers), Debian's fence_ipmilan/fence_redfish.
unit:
	$(CARGO) test --workspace --lib --bins --tests --locked
	$(CARGO) test --test metrics --locked -- --ignored --test-threads=1
	$(CARGO) test -p vigil-providers --test redfish_sushy --locked -- --ignored --test-threads=2
	$(CARGO) test -p vigil-providers --test ipmi_sim --locked -- --ignored --test-threads=1
	$(CARGO) test -p vigil-providers --test ipmi_native --locked -- --ignored --test-threads=1
	$(CARGO) test -p vigil-providers --test fence_agents --locked -- --ignored --test-threads=2
	$(CARGO) test --test ha_ipmi_proc --locked -- --ignored --test-threads=1

bench:
	$(CARGO) bench --bench throughput
	$(CARGO) bench --bench failover
	$(CARGO) bench --bench engine
	$(CARGO) bench --bench scale
	$(CARGO) bench --bench ha
	$(CARGO) bench --bench reassign
	$(CARGO) bench --bench takeover_proc

dev:
	$(CARGO) run --release -- dev
