#!/usr/bin/env bash
# skiff convert from registry to registry: the Debian test image of
# convert-debian.t (3 layers, made with umoci) copied as an ordinary OCI
# image into docker-registry (TLS from a test CA, bearer tokens from
# tests/servers/token_server.py) with skopeo, converted with
# `skiff convert docker://... docker://...` (layers streamed by ranges,
# the skiff image pushed), then mounted lazily from the registry through
# skiffd (fanotify): programs run having fetched a small part of the
# image, and every file equals umoci's unpack of the source. A second
# conversion, through an OCI index naming the source by digest, pushes
# nothing new and gives the manifest an OCI layout target gives.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
. "$(dirname "$0")/debianlib.sh"
need_net_tools docker-registry openssl curl jq skopeo
"$PY" -c 'import jwt, cryptography' 2>/dev/null ||
	skip_all "python3-jwt or python3-cryptography missing (scripts/setup.sh installs them)"
need_fanotify_skiffd
need_debian_rootfs

S=$T/src
debian_image "$S" || done_testing
REF=$T/ref/rootfs

CA=$T/ca
t_ok "a test CA and certificates" make_ca "$CA" || done_testing
start_token_registry "$CA" || done_testing
tport=$TOKEN_PORT kport=$REGISTRY_PORT
K=127.0.0.1:$kport
mkdir -p "$T/docker" "$T/certs"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$K" "$(printf skiff:secret | base64)" >"$T/docker/config.json"
cp "$CA/ca.crt" "$T/certs/ca.crt"
REG=(--ca-file "$CA/ca.crt" --docker-config "$T/docker/config.json")

t_ok "skopeo copies the ordinary image into the registry" \
	skopeo --insecure-policy copy -q --dest-cert-dir "$T/certs" --dest-creds skiff:secret \
	"oci:$S:l3" "docker://$K/skiff/debian:src" || done_testing
# what the registry holds, read with curl on a token of our own
tok=$(curl -sf --cacert "$CA/ca.crt" -u skiff:secret \
	"https://127.0.0.1:$tport/token?service=skiff-registry&scope=repository:skiff/debian:pull,push" | jq -r .token)
curl -sf --cacert "$CA/ca.crt" -H "Authorization: Bearer $tok" -o "$T/src-manifest.json" \
	-H "Accept: application/vnd.oci.image.manifest.v1+json" "https://$K/v2/skiff/debian/manifests/src"
t_is "... as 3 layers" "$(jq '.layers | length' "$T/src-manifest.json" 2>/dev/null)" 3
srcm=$(sha256sum <"$T/src-manifest.json" | cut -c1-64)

n0=$(wc -l <"$T/tokens.log")
t_ok "skiff convert docker://$K/skiff/debian:src docker://$K/skiff/debian:skiff" \
	"$SKIFF" convert "${REG[@]}" --upload-chunk-size 4M "docker://$K/skiff/debian:src" \
	"docker://$K/skiff/debian:skiff" || done_testing
cp "$T/.out" "$T/convert1.out"
diag "$(cat "$T/convert1.out")"
t_grep "... 3 layers into 3 blobs" "3 layers .* 3 blobs" "$T/convert1.out"
t_grep "... pushing the 3 data blobs, bootstrap and config" "pushed; 5 blobs uploaded .*, 0 already there" "$T/convert1.out"
tail -n +"$((n0 + 1))" "$T/tokens.log" >"$T/tokens-convert.log"
t_grep "... on a token for the user with push rights" 'pull,push"\], "who": "skiff"' "$T/tokens-convert.log"
t_ok "... reading the source's layers by ranges" \
	grep -qE '"GET /v2/skiff/debian/blobs/sha256:[0-9a-f]+ HTTP/[0-9.]+" 206 ' "$T/token/log"
t_ok "... uploading in 4M PATCH requests (over 93M of blobs: more than 20)" \
	test "$(grep -c '"PATCH /v2/skiff/debian/blobs/uploads/' "$T/token/log")" -gt 20

# the same image, through an index whose linux/amd64 entry is the source
# by digest (linux/arm64's, the skiff image, would not convert): nothing
# new to push, and the manifest a layout target gets
ssize=$(stat -c %s "$T/src-manifest.json")
m1=$(sed -n 's/.*manifest sha256:\([0-9a-f]*\) pushed.*/\1/p' "$T/convert1.out")
curl -sf --cacert "$CA/ca.crt" -H "Authorization: Bearer $tok" -o "$T/skiff-manifest.json" \
	-H "Accept: application/vnd.oci.image.manifest.v1+json" "https://$K/v2/skiff/debian/manifests/skiff"
t_is "the registry has the skiff image's manifest under the tag" \
	"$(sha256sum <"$T/skiff-manifest.json" | cut -c1-64)" "$m1"
t_grep "... recording the source manifest it came from" "\"dev.skiff.source-manifest\":\"sha256:$srcm\"" \
	"$T/skiff-manifest.json"
cat >"$T/index.json" <<EOF
{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:$m1", "size": $(stat -c %s "$T/skiff-manifest.json"), "platform": {"os": "linux", "architecture": "arm64"}},
 {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:$srcm", "size": $ssize, "platform": {"os": "linux", "architecture": "amd64"}}]}
EOF
t_ok "put an index of two platforms" curl -sf --cacert "$CA/ca.crt" -H "Authorization: Bearer $tok" -X PUT \
	-H "Content-Type: application/vnd.oci.image.index.v1+json" --data-binary "@$T/index.json" \
	"https://$K/v2/skiff/debian/manifests/multi"
t_ok "convert from the index to another tag" \
	"$SKIFF" convert "${REG[@]}" "docker://$K/skiff/debian:multi" "docker://$K/skiff/debian:again"
t_grep "... every blob was already there" "pushed; 0 blobs uploaded .*, 5 already there" "$T/.out"
t_is "... the same manifest" "$(sed -n 's/.*manifest sha256:\([0-9a-f]*\) pushed.*/\1/p' "$T/.out")" "$m1"
t_ok "convert the source by digest into an OCI layout" \
	"$SKIFF" convert -q "${REG[@]}" "docker://$K/skiff/debian@sha256:$srcm" "oci:$T/local:deb"
t_is "... the same manifest as the registry target's" "$(manifest_of "$T/local:deb")" "$m1"
t_fails "convert without the test CA fails" "$SKIFF" convert -q --docker-config "$T/docker/config.json" \
	"docker://$K/skiff/debian:src" "oci:$T/nope:x"
t_grep "... TLS verification, saying so" "certificate|SSL" "$T/.out"
t_fails "convert to a digest is refused" "$SKIFF" convert -q "${REG[@]}" \
	"oci:$T/local:deb" "docker://$K/skiff/debian@sha256:$srcm"

# a prefetch list: its files' chunks go to one more blob, pushed like the
# layers' blobs
printf '/usr/bin/ls\n/usr/lib/x86_64-linux-gnu/libc.so.6\n/usr/lib/os-release\n' >"$T/plist"
t_ok "convert with --prefetch-list to another tag" \
	"$SKIFF" convert "${REG[@]}" --prefetch-list "$T/plist" "docker://$K/skiff/debian:src" \
	"docker://$K/skiff/debian:pf"
t_grep "... 4 blobs" "3 layers .* 4 blobs" "$T/.out"
t_grep "... uploading the prefetch blob, bootstrap and config (one more layer), the layers' blobs already there" \
	"pushed; 3 blobs uploaded .*, 3 already there" "$T/.out"
mpf=$(sed -n 's/.*manifest sha256:\([0-9a-f]*\) pushed.*/\1/p' "$T/.out")
t_ok "... the same into an OCI layout" \
	"$SKIFF" convert -q "${REG[@]}" --prefetch-list "$T/plist" "docker://$K/skiff/debian:src" "oci:$T/local:pf"
t_is "... gives the registry target's manifest" "$(manifest_of "$T/local:pf")" "$mpf"
t_is "... listing the 3 files" "$("$SKIFF" inspect --json "$T/local:pf" | jq '.prefetch | length')" 3

# lazily through skiffd, from the registry
cat >"$T/skiffd.json" <<EOF
{"backend": {"ca_file": "$CA/ca.crt", "docker_config": "$T/docker/config.json"}}
EOF
t_ok "skiffd starts with the registry configuration" \
	start_skiffd --frontend fanotify --config "$T/skiffd.json" || done_testing
MNT=$T/mnt
t_ok "skiff mount docker://$K/skiff/debian:skiff" skiff_mount "docker://$K/skiff/debian:skiff" "$MNT" ||
	done_testing
t_is "a program from the image runs" "$(chroot "$MNT" /bin/sh -c 'echo hi from $(cat /etc/debian_version)')" \
	"hi from $(cat "$REF/etc/debian_version")"
t_ok "... and dpkg too" chroot "$MNT" /usr/bin/dpkg --version
t_grep "... saying what it is" "Debian .dpkg. package management program" "$T/.out"
total=$(jq '[.blobs[].stored_size] | add' <<<"$("$SKIFF" inspect --json "$T/local:deb")")
lazy=$(metric_sum skiff_fetched_bytes_total)
diag "fetched $lazy of $total stored bytes to run two programs"
t_ok "... having fetched under a fifth of the image's data ($lazy of $total bytes)" \
	test "$lazy" -gt 0 -a "$((lazy * 5))" -lt "$total"
t_ok "every file equals umoci's unpack of the source (bytes and metadata)" \
	timeout 300 "$TREECMP" -q "$REF" "$MNT"
t_ok "... the opaque directory holds only its new file" test "$(ls "$MNT/usr/share/man")" = README
all=$(metric_sum skiff_fetched_bytes_total)
# not every stored byte: chunks of files a later layer deleted, and the
# layer copies of chunks the prefetch blob holds, are never read
t_ok "... having fetched the rest ($all bytes, after $lazy)" test "$all" -gt "$lazy"
sync; echo 3 >/proc/sys/vm/drop_caches
t_ok "a second full read" timeout 300 "$TREECMP" -q "$REF" "$MNT"
t_is "... fetches nothing more" "$(metric_sum skiff_fetched_bytes_total)" "$all"
t_is "... without a verify or fetch error" \
	"$(metric skiff_verify_errors_total)/$(metric skiff_fetch_errors_total)" 0/0
t_ok "skiff umount" skiff_umount "$MNT"
stop_skiffd

# a layer the registry lost half way: the conversion fails saying which
# and why, and leaves no staged blob behind
l3=$(jq -r '.layers[2].digest' "$T/src-manifest.json")
dtok=$(curl -sf --cacert "$CA/ca.crt" -u skiff:secret \
	"https://127.0.0.1:$tport/token?service=skiff-registry&scope=repository:skiff/debian:pull,push,delete" | jq -r .token)
t_ok "delete the source's third layer from the registry" curl -sf --cacert "$CA/ca.crt" \
	-H "Authorization: Bearer $dtok" -X DELETE "https://$K/v2/skiff/debian/blobs/$l3"
mkdir -p "$T/tmp"
t_fails "converting the source again fails" env TMPDIR="$T/tmp" "$SKIFF" convert -q "${REG[@]}" \
	"docker://$K/skiff/debian:src" "docker://$K/skiff/debian:broken"
t_grep "... at layer 3, with the registry's answer" "layer 3 .*HTTP 404" "$T/.out"
t_is "... leaving no staged blob" "$(ls -A "$T/tmp")" ""
done_testing
