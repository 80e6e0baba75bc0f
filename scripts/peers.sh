#!/usr/bin/env bash
# vigil's test peers: real BMC emulators that nobody on this project wrote.
#
#   peers.sh install            python venv with sushy-tools 2.2.0 (Redfish emulator),
#                               a bcrypt htpasswd (admin / password) and a TLS test CA
#                               plus a server cert for 127.0.0.1; apt packages openipmi
#                               (ipmi_sim, the IPMI BMC emulator), ipmitool and
#                               fence-agents (fence_ipmilan, fence_redfish: the
#                               reference agents for the script driver) and prometheus
#                               (prometheus and promtool, for tests/metrics.rs) when
#                               missing.
#                               Idempotent, quiet.
#   peers.sh start-redfish [N]  N sushy-emulators (fake driver, 3 systems each) on free
#                               127.0.0.1 ports, plain HTTP; plus one more with TLS.
#                               Prints "name url" lines; PIDs go to $RUN/pids.
#   peers.sh stop               kills exactly the recorded PIDs and wipes their state.
#
# Everything lives under ${VIGIL_PEERS_DIR:-$HOME/.cache/vigil/peers}. The Rust tests
# (providers/tests/{redfish_sushy,ipmi_sim,fence_agents}.rs) only need `install`:
# they spawn their own emulators on free ports and kill them by PID. The ipmi_sim
# config templates and chassis-control program live in scripts/peers/ipmi/.
set -euo pipefail
DIR=${VIGIL_PEERS_DIR:-$HOME/.cache/vigil/peers}
RUN=$DIR/run
SUSHY_VERSION=2.2.0

log() { echo "peers: $*" >&2; }

install() {
  local need=()
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
  command -v openssl >/dev/null || need+=(openssl)
  command -v ipmi_sim >/dev/null || need+=(openipmi)
  command -v ipmitool >/dev/null || need+=(ipmitool)
  # /usr/sbin may be off a non-root PATH: look there too.
  command -v fence_ipmilan >/dev/null || [ -x /usr/sbin/fence_ipmilan ] || need+=(fence-agents)
  command -v promtool >/dev/null || need+=(prometheus)
  if [ ${#need[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { log "missing ${need[*]} and no apt-get: install them"; exit 1; }
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  mkdir -p "$DIR"
  if ! "$DIR/venv/bin/sushy-emulator" --help >/dev/null 2>&1 ||
     [ "$(cat "$DIR/venv/.sushy-version" 2>/dev/null)" != "$SUSHY_VERSION" ]; then
    rm -rf "$DIR/venv"
    python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install -q --disable-pip-version-check "sushy-tools==$SUSHY_VERSION"
    echo "$SUSHY_VERSION" >"$DIR/venv/.sushy-version"
  fi
  # sushy accepts bcrypt hashes only ($2b$); bcrypt comes with sushy-tools.
  [ -s "$DIR/htpasswd" ] || "$DIR/venv/bin/python" -c '
import bcrypt, sys
h = bcrypt.hashpw(b"password", bcrypt.gensalt(rounds=4)).decode()
open(sys.argv[1], "w").write("admin:" + h + "\n")' "$DIR/htpasswd"
  # A test CA and a server cert it signs (a self-signed cert with CA:TRUE is refused
  # as a server cert by rustls/webpki, so the leaf is separate).
  if [ ! -s "$DIR/tls/cert.pem" ] || [ ! -s "$DIR/tls/ca.pem" ]; then
    mkdir -p "$DIR/tls"
    local t=$DIR/tls
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=vigil test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$t/ca-key.pem" -out "$t/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$t/key.pem" -out "$t/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$t/server.ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial \
      -days 3650 -extfile "$t/server.ext" -out "$t/cert.pem" 2>/dev/null
    rm -f "$t/server.csr" "$t/server.ext" "$t/ca.srl"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# conf NAME PORT TLS(0|1) -> writes $RUN/NAME/sushy.conf
conf() {
  local name=$1 port=$2 tls=$3 d=$RUN/$1 n
  mkdir -p "$d/state"
  {
    echo "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'"
    echo "SUSHY_EMULATOR_LISTEN_PORT = $port"
    echo "SUSHY_EMULATOR_FAKE_DRIVER = True"
    echo "SUSHY_EMULATOR_STATE_DIR = '$d/state'"
    echo "SUSHY_EMULATOR_AUTH_FILE = '$DIR/htpasswd'"
    if [ "$tls" = 1 ]; then
      echo "SUSHY_EMULATOR_SSL_CERT = '$DIR/tls/cert.pem'"
      echo "SUSHY_EMULATOR_SSL_KEY = '$DIR/tls/key.pem'"
    fi
    echo "SUSHY_EMULATOR_FAKE_SYSTEMS = ["
    for n in 1 2 3; do
      echo "  {'uuid': '00000000-0000-4000-8000-$(printf %04x%08x "$port" "$n")', 'name': '$name-node$n',"
      echo "   'power_state': 'On', 'external_notifier': False, 'nics': [{'mac': '52:54:00:00:00:0$n', 'ip': '127.0.0.1'}]},"
    done
    echo "]"
  } >"$d/sushy.conf"
}

start_redfish() {
  local n=${1:-1}
  [ -x "$DIR/venv/bin/sushy-emulator" ] || { log "run: $0 install"; exit 1; }
  [ -s "$RUN/pids" ] && { log "already started ($RUN/pids): run $0 stop first"; exit 1; }
  mkdir -p "$RUN"
  local urls=()
  for i in $(seq 1 "$((n + 1))"); do
    local tls=0 scheme=http name=sushy$i port
    [ "$i" -gt "$n" ] && { tls=1; scheme=https; name=sushy-tls; }
    port=$(free_port)
    conf "$name" "$port" "$tls"
    nohup "$DIR/venv/bin/sushy-emulator" --config "$RUN/$name/sushy.conf" \
      </dev/null >"$RUN/$name/log" 2>&1 &
    echo $! >>"$RUN/pids"
    urls+=("$name $scheme://127.0.0.1:$port")
  done
  for u in "${urls[@]}"; do
    local url=${u#* } end=$((SECONDS + 20))
    until python3 - "$url" "$DIR/tls/ca.pem" <<'PY' >/dev/null 2>&1
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
urllib.request.urlopen(sys.argv[1] + "/redfish/v1/", timeout=1, context=ctx)
PY
    do
      [ $SECONDS -ge $end ] && { log "timeout waiting for ${u%% *}"; stop; exit 1; }
      sleep 0.2
    done
    echo "$u"
  done
}

stop() {
  if [ -s "$RUN/pids" ]; then
    while read -r pid; do
      kill "$pid" 2>/dev/null || true
    done <"$RUN/pids"
  fi
  rm -rf "$RUN"
}

case ${1:-} in
  install) install ;;
  start-redfish) start_redfish "${2:-1}" ;;
  stop) stop ;;
  *) echo "usage: $0 install | start-redfish [N] | stop" >&2; exit 2 ;;
esac
