# vigil — build, lint and test entry points.
#
#   make test    everything CI runs: formatting, clippy, unit, storage-suite,
#                in-process and multi-process cluster tests
#   make bench   the benchmarks recorded in BENCHMARKS.md (release builds, minutes)
#   make dev     a 3-member cluster on loopback, until Ctrl-C
#   make chaos   the long chaos campaign (vigil-chaos: many seeds, full self-test)

CARGO ?= cargo
# Where `make test` and `make chaos` keep chaos runs (histories, verdicts, logs).
CHAOS_OUT ?= $(or $(CARGO_TARGET_DIR),target)/chaos
# The harness built with the planted bugs compiled in (each off unless planted).
CHAOS = $(CARGO) run -q -p vigil-chaos --features planted-bugs --locked --

.PHONY: test lint unit chaos-smoke chaos bench dev deps

test: deps lint unit chaos-smoke

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

# The chaos harness on a small scale (its checkers' unit tests run with the workspace
# tests above): planted bugs must be caught, and one short in-process run must pass.
chaos-smoke:
	rm -rf $(CHAOS_OUT)/smoke
	$(CHAOS) selftest --bugs gate-ignores-budget,dead-hosts-kept --seeds 2 --duration 15s --out $(CHAOS_OUT)/smoke/selftest
	$(CHAOS) run --seed 1 --duration 20s --out $(CHAOS_OUT)/smoke/run

# The long campaign: every planted bug, and many seeds across the whole fault mix.
chaos:
	$(CHAOS) selftest --seeds 6 --duration 20s --out $(CHAOS_OUT)/campaign/selftest
	$(CHAOS) run --seed $${SEED:-1000} --seeds $${SEEDS:-100} --duration 60s --out $(CHAOS_OUT)/campaign/runs

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
