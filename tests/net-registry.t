#!/usr/bin/env bash
# skiff and OCI registries: docker-registry over TLS (a CA made here) with
# basic auth (htpasswd) and with bearer tokens from a token service
# (tests/servers/token_server.py). skiff push uploads an image
# (monolithic, chunked, cross-repository mounts) and skips blobs the
# registry has; skiffd mounts it lazily from docker://, through a mirror
# (nginx proxying, with an extra header) while the mirror is up and from
# the origin once it is down, on anonymous tokens and on basic auth; an
# OCI index picks the platform's manifest. Tokens expiring mid-run (a
# second token service whose tokens the registry refuses 3 s after issue,
# checked with curl): files read after the expiry read right on a new
# token skiffd fetches after the registry's 401, no reader getting EIO.
# Credentials also come from Docker credential helpers alone (credsStore
# for skiff push, credHelpers for skiffd), scripts written here and put in
# PATH. A registry naming a token service over plain http gets no
# credentials sent there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
need_net_tools docker-registry nginx htpasswd openssl curl jq
"$PY" -c 'import jwt, cryptography' 2>/dev/null ||
	skip_all "python3-jwt or python3-cryptography missing (scripts/setup.sh installs them)"
need_fanotify_skiffd

CA=$T/ca
t_ok "a test CA and certificates" make_ca "$CA" || done_testing
htpasswd -Bbn skiff secret >"$T/htpasswd"
bport=$(free_port)
t_ok "registry with basic auth on 127.0.0.1:$bport" start_registry basic "$bport" "$CA" "auth:
  htpasswd:
    realm: skiff-test
    path: $T/htpasswd" || done_testing
start_token_registry "$CA" || done_testing
kport=$REGISTRY_PORT
mkdir -p "$T/docker"
auth=$(printf skiff:secret | base64)
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}, "https://127.0.0.1:%s/v1/": {"auth": "%s"}}}\n' \
	"$bport" "$auth" "$kport" "$auth" >"$T/docker/config.json"
PUSH=("$SKIFF" push --ca-file "$CA/ca.crt" --docker-config "$T/docker/config.json")

SRC=$T/src
t_ok "generate the edge-case tree" "$GEN_TREE" "$SRC" || done_testing
t_ok "build it (64K chunks)" "$SKIFF" build -q --chunk-size 64K "$SRC" "$T/img:a" || done_testing
nblobs=$(($("$SKIFF" inspect --json "$T/img:a" | jq '.blobs | length') + 2))
B=127.0.0.1:$bport
K=127.0.0.1:$kport

# push
puts() { grep -c '"PUT /v2/[^ ]*/blobs/uploads/' "$T/$1/log"; }
t_ok "skiff push to the basic-auth registry" "${PUSH[@]}" "$T/img:a" "docker://$B/skiff/edge:v1"
t_grep "... uploads the $nblobs blobs (data, bootstrap, config)" "$nblobs blobs uploaded" "$T/.out"
p0=$(puts basic)
t_ok "pushed again" "${PUSH[@]}" "$T/img:a" "docker://$B/skiff/edge:v1"
t_grep "... every blob is already there" "0 blobs uploaded .*, $nblobs already there" "$T/.out"
t_is "... the registry saw no blob upload" "$(puts basic)" "$p0"
t_ok "push with --from mounts the blobs from another repository" \
	"${PUSH[@]}" --from skiff/edge "$T/img:a" "docker://$B/skiff/other:v1"
t_grep "... all $nblobs of them" "0 blobs uploaded .*, $nblobs mounted" "$T/.out"
t_ok "chunked push (PATCH) to the token registry" \
	"${PUSH[@]}" --chunk-size 64K "$T/img:a" "docker://$K/skiff/edge:v1"
t_ok "... in several PATCH requests" test "$(grep -c '"PATCH /v2/skiff/edge/blobs/uploads/' "$T/token/log")" -gt "$nblobs"
t_grep "... with a token for the user" '"who": "skiff"' "$T/tokens.log"
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$bport" "$(printf skiff:wrong | base64)" >"$T/bad.json"
t_fails "push with a wrong password fails" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--docker-config "$T/bad.json" "$T/img:a" "docker://$B/skiff/edge:v2"
t_grep "... saying why" "HTTP 401" "$T/.out"
printf '{}\n' >"$T/empty.json"
t_fails "anonymous push to the token registry is refused" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--docker-config "$T/empty.json" "$T/img:a" "docker://$K/skiff/anon:v1"
t_grep "... by the registry (a pull-only token)" "HTTP 401" "$T/.out"
t_fails "push without the test CA fails TLS verification" "$SKIFF" push \
	--docker-config "$T/docker/config.json" "$T/img:a" "docker://$B/skiff/edge:v2"
t_grep "... saying so" "certificate|SSL" "$T/.out"

# a registry over https naming a token service over plain http: the
# user's credentials are not sent there (a server logging every request
# stands in for the token service)
hport=$(free_port)
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T" "$hport" 2>>"$T/faulty.log" &
_n_pids+=($!)
t_ok "a plain-http stand-in token service on 127.0.0.1:$hport" wait_port "$hport"
dport=$(free_port)
t_ok "a registry naming it as its token realm on 127.0.0.1:$dport" \
	start_registry down "$dport" "$CA" "auth:
  token:
    realm: http://127.0.0.1:$hport/token
    service: skiff-registry
    issuer: skiff-issuer
    rootcertbundle: $CA/token.crt"
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$dport" "$auth" >"$T/down.json"
t_fails "push to it with credentials fails" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--docker-config "$T/down.json" "$T/img:a" "docker://127.0.0.1:$dport/skiff/edge:v1"
t_grep "... naming the realm, why, and the key that would trust it" \
	"credentials not sent to token realm \"http://127.0.0.1:$hport/token\" \(plain http from an https registry\).*token_realms" "$T/.out"
t_is "... the realm saw no request" "$(curl -s "http://127.0.0.1:$hport/_log" | wc -l)" 0
t_fails "with --token-realm naming it, the push asks it" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--token-realm "http://127.0.0.1:$hport/token" \
	--docker-config "$T/down.json" "$T/img:a" "docker://127.0.0.1:$dport/skiff/edge:v1"
t_grep "... (a stand-in: it has no token to give)" "token service answered HTTP 404" "$T/.out"
t_is "... and sent it the credentials" \
	"$(curl -s "http://127.0.0.1:$hport/_log" | jq -r 'select(.path | startswith("/token")) | .auth')" "Basic $auth"

# an OCI index of two platforms: linux/amd64 is image a, linux/arm64 image b
cp -a "$SRC" "$T/src2"
echo other >"$T/src2/only-in-b"
"$SKIFF" build -q --chunk-size 64K "$T/src2" "$T/img:b"
t_ok "push image b" "${PUSH[@]}" "$T/img:b" "docker://$B/skiff/edge:b"
ma=$("$SKIFF" inspect --json "$T/img:a" | jq -r .manifest)
mb=$("$SKIFF" inspect --json "$T/img:b" | jq -r .manifest)
sa=$(stat -c %s "$T/img/blobs/sha256/$ma")
sb=$(stat -c %s "$T/img/blobs/sha256/$mb")
cat >"$T/index.json" <<EOF
{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:$mb", "size": $sb, "platform": {"os": "linux", "architecture": "arm64"}},
 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:$ma", "size": $sa, "platform": {"os": "linux", "architecture": "amd64"}}]}
EOF
t_ok "put an index of both" curl -sf --cacert "$CA/ca.crt" -u skiff:secret -X PUT \
	-H "Content-Type: application/vnd.oci.image.index.v1+json" --data-binary "@$T/index.json" \
	"https://$B/v2/skiff/edge/manifests/multi"

# skiffd: the token registry behind a mirror (nginx proxying it, as a
# peer proxy would); skiffd has credentials for the basic-auth registry
# only, so it pulls from the token registry with anonymous tokens
mport=$(free_port)
t_ok "mirror (nginx proxy) on 127.0.0.1:$mport" start_nginx mirror "$mport" "location / {
		proxy_pass https://$K;
		proxy_ssl_trusted_certificate $CA/ca.crt;
		proxy_ssl_verify on;
		proxy_ssl_name 127.0.0.1;
		proxy_http_version 1.1;
		proxy_set_header Connection \"\";
	}" || done_testing
MIRROR_PID=$NGINX_PID
printf '{"auths": {"127.0.0.1:%s": {"auth": "%s"}}}\n' "$bport" "$auth" >"$T/skiffd-docker.json"
cat >"$T/skiffd.json" <<EOF
{"backend": {"ca_file": "$CA/ca.crt", "docker_config": "$T/skiffd-docker.json",
  "max_attempts": 3, "backoff_ms": 50, "mirror_attempts": 1, "mirror_skip_ms": 60000,
  "registries": {"$K": {"mirrors": [{"url": "http://127.0.0.1:$mport",
    "headers": {"X-Dragonfly-Registry": "https://$K"}}]}}}}
EOF
t_ok "skiffd starts with the registry configuration" \
	start_skiffd --frontend fanotify --config "$T/skiffd.json" --readahead 0 || done_testing
MNT=$T/mnt
t_ok "skiff mount docker://$K/skiff/edge:v1" skiff_mount "docker://$K/skiff/edge:v1" "$MNT" || done_testing
t_is "nothing of the data fetched at mount time" "$(metric skiff_fetched_chunks_total)" 0
t_ok "a file reads right" cmp "$MNT/files/random-3.5M" "$SRC/files/random-3.5M"
t_ok "... its blob ranges came through the mirror, with its extra header" \
	grep -q "GET /v2/skiff/edge/blobs/sha256:.* 206 bytes=.*\"https://$K\"" "$T/mirror/access.log"
t_grep "... on an anonymous token from the token service" '"who": "anonymous"' "$T/tokens.log"
o0=$(grep -c '"GET /v2/skiff/edge/blobs/' "$T/token/log")
stop_pid "$MIRROR_PID"
t_ok "with the mirror stopped, the whole tree reads right" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_ok "... served by the origin" test "$(grep -c '"GET /v2/skiff/edge/blobs/' "$T/token/log")" -gt "$o0"
t_ok "... after a failed attempt at the mirror" \
	test "$(metric 'skiff_backend_errors_total{source="docker://'"$K"'/skiff/edge",kind="connect"}')" -ge 1
t_ok "... over HTTP/2 (the registry offers it over TLS)" \
	test "$(metric "skiff_backend_http2_total{source=\"docker://$K/skiff/edge\"}")" -gt 0
t_ok "skiff umount" skiff_umount "$MNT"
t_ok "mount by digest" skiff_mount "docker://$K/skiff/edge@sha256:$ma" "$MNT"
t_ok "... reads right" cmp "$MNT/files/compressible.txt" "$SRC/files/compressible.txt"
skiff_umount "$MNT"
t_fails "a tag the registry lacks is refused" "$SKIFF" mount "docker://$K/skiff/edge:nope" "$MNT"
t_grep "... saying so" "HTTP 404|MANIFEST_UNKNOWN" "$T/.out"

# the basic-auth registry, with the user's credentials: an index of two
# platforms gives linux/amd64's image
t_ok "mount the index: linux/amd64 is image a" skiff_mount "docker://$B/skiff/edge:multi" "$MNT"
t_is "... its manifest" "$("$SKIFF" status --json | jq -r '.images[0].manifest')" "$ma"
t_ok "... and it reads right" timeout 300 "$TREECMP" "$SRC" "$MNT"
skiff_umount "$MNT"

# tokens expiring mid-run: registry "expiring" trusts a token service
# whose tokens it refuses 3 s after they were issued (the service writes
# "exp" 60 s early: docker-registry's leeway; its "expires_in" of 3 s
# skiffd takes as 10 s, so it sends a token the registry refuses). skiffd
# reads some files, the token expires, eight readers read the others:
# each reads right, on a new token fetched after a 401, none got EIO.
start_token_registry "$CA" expiring 3 60 || done_testing
E=127.0.0.1:$REGISTRY_PORT
etport=$TOKEN_PORT
ES=$T/esrc
mkdir -p "$ES"
for i in 1 2 3 4 5 6 7 8; do
	head -c $((256 * 1024 + i)) /dev/urandom >"$ES/e$i"
done
t_ok "build an image of 8 random files (64K chunks)" "$SKIFF" build -q --chunk-size 64K "$ES" "$T/eimg:e"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$E" "$auth" >"$T/expiring.json"
t_ok "push it to registry expiring" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--docker-config "$T/expiring.json" "$T/eimg:e" "docker://$E/skiff/exp:v1"
# etoken: a pull token for the user (skiffd's are anonymous); estatus
# TOKEN: the registry's answer to a manifest request with it
etoken() {
	curl -s --cacert "$CA/ca.crt" -u skiff:secret \
		"https://127.0.0.1:$etport/token?service=skiff-registry&scope=repository:skiff/exp:pull" |
		jq -r .token
}
estatus() {
	curl -s -o /dev/null -w '%{http_code}' --cacert "$CA/ca.crt" -H "Authorization: Bearer $1" \
		-H "Accept: application/vnd.oci.image.manifest.v1+json" "https://$E/v2/skiff/exp/manifests/v1"
}
# refused: until the registry answers 401 to $tok (10 s)
refused() {
	local i
	for i in $(seq 1 100); do
		[ "$(estatus "$tok")" = 401 ] && return 0
		sleep 0.1
	done
	return 1
}
anon() { grep -c '"who": "anonymous"' "$TOKEN_LOG"; }
b401() { grep -cE '"GET /v2/skiff/exp/blobs/[^"]*" 401' "$T/expiring/log"; }
MNTE=$T/mnte
t_ok "skiffd mounts it" skiff_mount "docker://$E/skiff/exp:v1" "$MNTE" || done_testing
tok=$(etoken)
t_is "a token just issued is accepted" "$(estatus "$tok")" 200
for i in 1 2 3 4; do
	t_ok "e$i reads right" timeout 60 cmp "$MNTE/e$i" "$ES/e$i"
done
a0=$(anon)
t_ok "... then refused, its 3 s over" refused
# and skiffd's token ($a0 fetched so far), issued before that one
fe0=$(metric skiff_fetch_errors_total)
ev0=$(metric skiff_events_failed_total)
r0=$(b401)
t_is "then 8 readers of e5..e8 at once: all read right" \
	"$(concurrent_readers 8 "$MNTE" "$ES" e5 e6 e7 e8)" 0
t_ok "... skiffd sent the expired token: the registry answered 401" test "$(b401)" -gt "$r0"
t_ok "... and skiffd fetched a new token: $(($(anon) - a0)) more" test "$(anon)" -gt "$a0"
t_is "... no backend read failed" "$(($(metric skiff_fetch_errors_total) - fe0))" 0
t_is "... no read was answered with an error" "$(($(metric skiff_events_failed_total) - ev0))" 0
t_ok "... and the whole image reads right" timeout 60 "$TREECMP" "$ES" "$MNTE"
t_ok "skiff umount" skiff_umount "$MNTE"
stop_skiffd

# credentials from credential helpers only (no "auths"): skifftest knows
# the basic-auth registry's password, skiffnone knows nothing; both log
# the server address they were asked about
HB=$T/helpers
mkdir -p "$HB"
cat >"$HB/docker-credential-skifftest" <<EOF
#!/bin/sh
[ "\$1" = get ] || exit 2
server=\$(cat)
echo "\$server" >>"$T/skifftest.log"
if [ "\$server" = "$B" ]; then
	echo '{"ServerURL":"$B","Username":"skiff","Secret":"secret"}'
else
	echo "credentials not found in native keychain"
	exit 1
fi
EOF
cat >"$HB/docker-credential-skiffnone" <<EOF
#!/bin/sh
cat >>"$T/skiffnone.log"
echo >>"$T/skiffnone.log"
echo "credentials not found in native keychain"
exit 1
EOF
chmod 755 "$HB"/docker-credential-*
export PATH="$HB:$PATH"
printf '{"auths": {"%s": {}}, "credsStore": "skifftest"}\n' "$B" >"$T/store.json"
t_ok "skiff push with credentials from the credsStore helper" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--docker-config "$T/store.json" "$T/img:a" "docker://$B/skiff/helper:v1"
t_grep "... which was asked about $B" "^$B\$" "$T/skifftest.log"
printf '{"credsStore": "skiffnone"}\n' >"$T/none.json"
t_fails "a helper without credentials: anonymous, refused by the registry" "$SKIFF" push \
	--ca-file "$CA/ca.crt" --docker-config "$T/none.json" "$T/img:a" "docker://$B/skiff/helper:v2"
t_grep "... saying where credentials were looked for" \
	"none in the Docker config file nor from docker-credential-skiffnone" "$T/.out"
printf '{"credsStore": "skiff-missing"}\n' >"$T/missing.json"
t_fails "a helper not installed is an error" "$SKIFF" push --ca-file "$CA/ca.crt" \
	--docker-config "$T/missing.json" "$T/img:a" "docker://$B/skiff/helper:v2"
t_grep "... naming it" "docker-credential-skiff-missing .*not found in PATH" "$T/.out"

# skiffd: credHelpers names skifftest for the basic-auth registry, over a
# credsStore that knows nothing
rm -f "$T/skifftest.log" "$T/skiffnone.log"
printf '{"credHelpers": {"%s": "skifftest"}, "credsStore": "skiffnone"}\n' "$B" >"$T/helpers.json"
cat >"$T/skiffd-helpers.json" <<EOF
{"backend": {"ca_file": "$CA/ca.crt", "docker_config": "$T/helpers.json"}}
EOF
t_ok "skiffd starts with a Docker config of credential helpers" \
	start_skiffd --frontend fanotify --config "$T/skiffd-helpers.json" --readahead 0 || done_testing
t_ok "skiff mount docker://$B/skiff/helper:v1 on the helper's credentials" \
	skiff_mount "docker://$B/skiff/helper:v1" "$MNT"
t_ok "... reads right" timeout 300 "$TREECMP" "$SRC" "$MNT"
t_grep "... credHelpers' skifftest was asked about $B" "^$B\$" "$T/skifftest.log"
t_ok "... credsStore's skiffnone was not asked" test ! -e "$T/skiffnone.log"
skiff_umount "$MNT"
stop_skiffd
done_testing
