# shellcheck shell=bash
# Servers for the network tests, on 127.0.0.1 only, in the test's scratch
# directory, stopped when the test exits. Source after lib.sh.

_n_pids=()
# Debian's python3 (its python3-jwt, python3-cryptography), not whatever
# python3 comes first in PATH
PY=${SKIFF_PYTHON:-/usr/bin/python3}
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/nginx-conf.sh"

_n_cleanup() {
	local p
	for p in "${_n_pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${_n_pids[@]}"; do
		wait "$p" 2>/dev/null
	done
}
# lib.sh's EXIT trap runs _t_cleanup: run ours first (servers may hold
# files in $T)
trap '_n_cleanup; _t_cleanup' EXIT

# need_net_tools CMD...: root and the commands (and Debian's python3),
# or the whole test is skipped with the reason
need_net_tools() {
	local c
	need_root
	for c in "$PY" "$@"; do
		command -v "$c" >/dev/null || skip_all "$c missing (scripts/setup.sh installs it)"
	done
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s)
wait_port() {
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# start_nginx NAME PORT SERVER_BLOCK_BODY: nginx in the foreground with its
# files in $T/NAME; access log $T/NAME/access.log ("$request $status
# $http_range" per line). Sets NGINX_PID.
start_nginx() {
	local name=$1 port=$2 body=$3 d=$T/$1
	nginx_conf "$d" "$port" \
		"log_format skiff '\$request \$status \$http_range \$body_bytes_sent \"\$http_x_dragonfly_registry\"'; access_log $d/access.log skiff;" \
		"$body"
	nginx -c "$d/nginx.conf" -p "$d" >>"$d/stderr.log" 2>&1 &
	NGINX_PID=$!
	_n_pids+=("$NGINX_PID")
	wait_port "$port"
}

# stop_pid PID: stops a server started here
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# metric_sum NAME: the sum of a labelled counter over its label sets
metric_sum() {
	curl -s --unix-socket "$SKIFF_SOCKET" http://skiffd/metrics |
		awk -v n="$1" 'index($1, n "{") == 1 || $1 == n { s += $2; f = 1 } END { print f ? s : "missing" }'
}

# make_ca DIR: a test CA, a server certificate for 127.0.0.1 signed by it
# (DIR/ca.crt, DIR/server.{crt,key}) and a self-signed ES256 token
# signing pair (DIR/token.{crt,key})
make_ca() {
	local d=$1
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=skiff test CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null &&
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-subj "/CN=127.0.0.1" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null &&
	printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$d/ext" &&
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null &&
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=skiff test token signer" -keyout "$d/token.key" -out "$d/token.crt" 2>/dev/null
}

# start_registry NAME PORT CA_DIR AUTH_YAML: docker-registry over TLS on
# 127.0.0.1:PORT, storage and log in $T/NAME. Sets REGISTRY_PID.
start_registry() {
	local name=$1 port=$2 ca=$3 auth=$4 d=$T/$1
	mkdir -p "$d/data"
	cat >"$d/config.yml" <<EOF2
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $d/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $ca/server.crt
    key: $ca/server.key
$auth
EOF2
	docker-registry serve "$d/config.yml" >>"$d/log" 2>&1 &
	REGISTRY_PID=$!
	_n_pids+=("$REGISTRY_PID")
	wait_port "$port"
}

# start_token_registry CA_DIR [NAME TTL LEEWAY]: a token service
# (servers/token_server.py: user skiff, password secret, 60 s tokens,
# requests logged to $T/tokens.log) and docker-registry "token" ($T/token)
# trusting its tokens, both over TLS from CA_DIR (make_ca); 2 test
# points. With NAME, TTL and LEEWAY: registry NAME ($T/NAME), the token
# log $T/NAME.tokens.log, tokens of TTL seconds whose "exp" is LEEWAY
# seconds earlier (token_server.py). Sets TOKEN_PORT, REGISTRY_PORT and
# TOKEN_LOG; fails when either does not start.
start_token_registry() {
	local ca=$1 name=${2:-token} ttl=${3:-60} leeway=${4:-0}
	TOKEN_PORT=$(free_port)
	TOKEN_LOG=$T/tokens.log
	[ "$name" = token ] || TOKEN_LOG=$T/$name.tokens.log
	"$PY" "$ROOT/tests/servers/token_server.py" "$TOKEN_PORT" "$ca/token.crt" "$ca/token.key" \
		"$ca/server.crt" "$ca/server.key" skiff-issuer skiff secret "$ttl" "$TOKEN_LOG" "$leeway" \
		2>>"$T/token.err" &
	_n_pids+=($!)
	t_ok "token service on 127.0.0.1:$TOKEN_PORT" wait_port "$TOKEN_PORT" || return 1
	REGISTRY_PORT=$(free_port)
	t_ok "registry with bearer tokens on 127.0.0.1:$REGISTRY_PORT" \
		start_registry "$name" "$REGISTRY_PORT" "$ca" "auth:
  token:
    realm: https://127.0.0.1:$TOKEN_PORT/token
    service: skiff-registry
    issuer: skiff-issuer
    rootcertbundle: $ca/token.crt"
}
