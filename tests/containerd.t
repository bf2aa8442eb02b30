#!/usr/bin/env bash
# containerd runs skiff images lazily through skiff-snapshotter. Debian's
# containerd and runc (a root, socket and configuration of the test's own),
# docker-registry over TLS on 127.0.0.1, skiffd (fanotify) under the test
# supervisor, and the Debian test image of convert-debian.t, converted into
# the registry. The pull downloads the manifest and config, skiffd the
# bootstrap; a container reads files across the image and prints what the
# source tree holds; a second tag costs nothing; an ordinary OCI image
# through the same snapshotter is unpacked and runs; a running container
# survives restarts of the snapshotter and of skiffd; broken skiff images
# fail the pull, saying why, and leave nothing mounted; a registry that
# fails mid-pull fails it saying so, and the same pull works once the
# registry is well; one that lies about data gives the container I/O
# errors, never the lies; removing it all
# leaves no mount, registration, container or shim.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netlib.sh"
. "$(dirname "$0")/debianlib.sh"
. "$(dirname "$0")/ctdlib.sh"
need_net_tools docker-registry openssl curl jq skopeo
need_containerd
[ -x "$CRIPULL" ] || skip_all "$CRIPULL not built (make)"
need_fanotify_skiffd
need_debian_rootfs

S=$T/src
debian_image "$S" || done_testing
REF=$T/ref/rootfs
CA=$T/ca
t_ok "a test CA and certificates" make_ca "$CA" || done_testing
port=$(free_port)
t_ok "registry on 127.0.0.1:$port" start_registry reg "$port" "$CA" "" || done_testing
K=127.0.0.1:$port
RLOG=$T/reg/log
mkdir -p "$T/certs" "$T/certs.d/$K"
cp "$CA/ca.crt" "$T/certs/ca.crt"
# containerd's registry host configuration, as a node has it
printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n' "$K" "$K" "$CA/ca.crt" \
	>"$T/certs.d/$K/hosts.toml"
PULL=("$SNAPSHOTTER" pull --address "$CTD_SOCK" --namespace skiff-test --hosts-dir "$T/certs.d")

t_ok "skopeo copies the ordinary image into the registry" \
	skopeo --insecure-policy copy -q --dest-cert-dir "$T/certs" "oci:$S:l3" "docker://$K/debian:oci" ||
	done_testing
t_ok "skiff convert makes the skiff image beside it" \
	"$SKIFF" convert -q --ca-file "$CA/ca.crt" "docker://$K/debian:oci" "docker://$K/debian:skiff" ||
	done_testing
t_ok "... and a second tag of it (skopeo)" skopeo --insecure-policy copy -q --src-cert-dir "$T/certs" \
	--dest-cert-dir "$T/certs" "docker://$K/debian:skiff" "docker://$K/debian:again"
curl -sf --cacert "$CA/ca.crt" -o "$T/manifest.json" \
	-H "Accept: application/vnd.oci.image.manifest.v1+json" "https://$K/v2/debian/manifests/skiff"
CONFIG=$(jq -r .config.digest "$T/manifest.json")
BOOT=$(jq -r '.layers[-1].digest' "$T/manifest.json")
mapfile -t BLOBS < <(jq -r '.layers[:-1][].digest' "$T/manifest.json")
STORED=$(jq '[.layers[:-1][].size] | add' "$T/manifest.json")
t_ok "the image has data blobs (${#BLOBS[@]}, $STORED bytes) and a bootstrap" \
	test "${#BLOBS[@]}" -ge 1 -a "$STORED" -gt 1000000

cat >"$T/skiffd.json" <<EOF
{"backend": {"ca_file": "$CA/ca.crt"}}
EOF
SKIFFD_WRAP="$FDSUP -m 8 -t 10 -s $T/notify.sock --"
t_ok "skiffd starts (under the test supervisor, as under systemd)" \
	start_skiffd --frontend fanotify --config "$T/skiffd.json" || done_testing
unset SKIFFD_WRAP
t_ok "skiff-snapshotter starts" start_snapshotter || done_testing
t_ok "containerd starts with it as the skiff proxy snapshotter" start_containerd || done_testing
t_grep "... which containerd lists" "skiff .* ok" <("${CTR[@]}" plugins ls 2>&1)

# blob GETs in the registry's log since line $1: "DIGEST STATUS" per line
blob_gets() {
	tail -n +"$(($1 + 1))" "$RLOG" |
		sed -n 's|.*"GET /v2/debian/blobs/\(sha256:[0-9a-f]*\) HTTP/[0-9.]*" \([0-9]*\) .*|\1 \2|p'
}
# full downloads (200) among them
full_gets() { blob_gets "$1" | awk '$2 == 200 { print $1 }' | sort -u; }

# 1. the lazy pull
n0=$(wc -l <"$RLOG")
t_ok "skiff-snapshotter pull $K/debian:skiff" "${PULL[@]}" "$K/debian:skiff" || done_testing
diag "$(cat "$T/.out")"
blob_gets "$n0" | sort | uniq -c >"$T/pull-gets"
diag "blob GETs of the pull: $(sed "s/$CONFIG/config/; s/$BOOT/bootstrap/" "$T/pull-gets" | tr -s ' \n' ' ')"
t_is "... containerd downloads the config" "$(full_gets "$n0" | grep -c "$CONFIG")" 1
t_ok "... skiffd the bootstrap" grep -q "$BOOT" "$T/pull-gets"
# skiffd reads each data blob's chunk table (one range) when it mounts
t_is "... and of each data blob only its chunk table, one range read" \
	"$(grep -F -f <(printf '%s\n' "${BLOBS[@]}") "$T/pull-gets" | awk '$1 == 1 && $3 == 206' | wc -l)" \
	"${#BLOBS[@]}"
t_is "... no other read of a data blob" "$(grep -cF -f <(printf '%s\n' "${BLOBS[@]}") "$T/pull-gets")" \
	"${#BLOBS[@]}"
t_is "... the snapshotter committed every layer without a download" \
	"$(grep -c "nothing downloaded" "$T/sn.log")" "$((${#BLOBS[@]} + 1))"
t_is "... one lazy mount" "$(ctd_erofs_mounts)" 1
t_grep "skiff status shows the image" "docker://$K/debian@sha256:" <("$SKIFF" status 2>&1)
f0=$(metric_sum skiff_fetched_bytes_total)

# a program that reads files across the image
PROG='cat /etc/debian_version /etc/skiff-test; ls /usr/share/man;
sha256sum /usr/bin/dpkg /bin/bash /usr/lib/x86_64-linux-gnu/libc.so.6 /opt/data.bin | sed "s|  /|  |"'
want=$(cd "$REF" && cat etc/debian_version etc/skiff-test && ls usr/share/man &&
	sha256sum usr/bin/dpkg bin/bash usr/lib/x86_64-linux-gnu/libc.so.6 opt/data.bin)
# run_prog NAME IMAGE CTR...: runs PROG in a new container NAME of IMAGE
# (CTR: the ctr command, its namespace), and prints what PROG wrote and
# what ctr said. PROG writes to a file in a directory bound in: ctr's
# copy of a container's last output races the container's exit in
# containerd 1.6, and once lost the tail of the output.
run_prog() {
	local name=$1 img=$2
	shift 2
	mkdir -p "$T/out/$name"
	"$@" run --rm --snapshotter skiff --mount "type=bind,src=$T/out/$name,dst=/out,options=rbind:rw" \
		"$img" "$name" sh -c "{ $PROG; } >/out/result 2>&1" >"$T/out/$name/ctr" 2>&1
	cat "$T/out/$name/result" "$T/out/$name/ctr" 2>/dev/null
}
t_is "ctr run: a program in the container reads the image's files right" \
	"$(run_prog c1 "$K/debian:skiff" "${CTR[@]}")" "$want"
f1=$(metric_sum skiff_fetched_bytes_total)
diag "pull $f0 bytes through skiffd, run $((f1 - f0)) more; the data blobs hold $STORED"
t_ok "... having fetched a small part of the image ($f1 of $STORED bytes)" \
	test "$f1" -gt 0 -a "$((f1 * 4))" -lt "$STORED"
t_is "... and no data blob whole" "$(full_gets "$n0" | grep -vc -e "$CONFIG" -e "$BOOT")" 0

# 2. the same image under another tag: nothing prepared, nothing fetched
n1=$(wc -l <"$RLOG")
c1=$(grep -c "nothing downloaded" "$T/sn.log")
t_ok "pull the second tag" "${PULL[@]}" "$K/debian:again"
t_is "... nothing downloaded from the registry" "$(blob_gets "$n1" | wc -l)" 0
t_is "... no new snapshot" "$(grep -c "nothing downloaded" "$T/sn.log")" "$c1"
t_is "... the same lazy mount" "$(ctd_erofs_mounts)" 1
t_is "... and it runs" "$("${CTR[@]}" run --rm --snapshotter skiff "$K/debian:again" c2 \
	cat /etc/skiff-test 2>&1)" "skiff test"

# 2b. kubelet's way: the CRI plugin pulls, into its own namespace (k8s.io).
# containerd finds the committed layers by their target label in the
# snapshotter, whatever namespace made them: nothing new is prepared.
n2=$(wc -l <"$RLOG")
c2=$(grep -c "nothing downloaded" "$T/sn.log")
t_ok "CRI PullImage of the skiff image (as kubelet asks)" "$CRIPULL" "$CTD_SOCK" "$K/debian:skiff"
t_is "... shares the layers the other namespace has: no new snapshot" \
	"$(grep -c "nothing downloaded" "$T/sn.log")" "$c2"
t_is "... no blob downloaded" "$(blob_gets "$n2" | grep -vc "$CONFIG")" 0
t_is "... the same lazy mount" "$(ctd_erofs_mounts)" 1
t_is "... and a container of it runs" "$("${CTR_K8S[@]}" run --rm --snapshotter skiff "$K/debian:skiff" k1 \
	cat /etc/skiff-test 2>&1)" "skiff test"
# the CRI plugin names an image also by digest and by config id
t_ok "... the image removed from the CRI namespace, under all its names" \
	eval '"${CTR_K8S[@]}" images rm --sync $("${CTR_K8S[@]}" images ls -q)'
t_is "... its snapshots gone from that namespace" \
	"$("${CTR_K8S[@]}" snapshots --snapshotter skiff ls | tail -n +2 | wc -l)" 0
t_is "... the lazy mount stays for the other" "$(ctd_erofs_mounts)" 1
t_is "... the other namespace's container still runs" "$("${CTR[@]}" run --rm --snapshotter skiff \
	"$K/debian:skiff" c2b cat /etc/skiff-test 2>&1)" "skiff test"

# 3. an ordinary OCI image through the same snapshotter
t_ok "pull the ordinary OCI image with the skiff snapshotter" "${PULL[@]}" "$K/debian:oci"
t_is "... unpacked: it runs" "$("${CTR[@]}" run --rm --snapshotter skiff "$K/debian:oci" c3 \
	sh -c 'cat /etc/skiff-test; ls /usr/share/man' 2>&1)" "$(printf 'skiff test\nREADME')"
t_is "... without a lazy mount of its own" "$(ctd_erofs_mounts)" 1

# 4. restarts with a container running
mkdir -p "$T/out/c4"
t_ok "a long-running container" "${CTR[@]}" run -d --snapshotter skiff \
	--mount "type=bind,src=$T/out/c4,dst=/out,options=rbind:rw" "$K/debian:skiff" c4 sleep 600
t_ok "restart the snapshotter" eval 'stop_snapshotter && start_snapshotter'
t_is "... the lazy mount stays" "$(ctd_erofs_mounts)" 1
holder=$(holder_pid)
t_ok "kill skiffd (its holder: systemd restarts it from the fd store)" kill -KILL "$holder"
t_ok "... a new skiffd took the group over" \
	logged "adopted the fanotify fd of a dead holder from systemd's fd store" 60
for _ in $(seq 1 100); do [ -n "$(holder_pid)" ] && [ "$(holder_pid)" != "$holder" ] && break; sleep 0.1; done
t_is "the running container reads the image right after both" \
	"$("${CTR[@]}" tasks exec --exec-id e1 c4 sh -c "{ $PROG; } >/out/result 2>&1" 2>&1; cat "$T/out/c4/result")" "$want"
t_is "a new container of the image starts" \
	"$("${CTR[@]}" run --rm --snapshotter skiff "$K/debian:skiff" c5 cat /etc/skiff-test 2>&1)" "skiff test"
t_ok "stop the long-running container" eval '"${CTR[@]}" tasks kill -s KILL c4 && sleep 0.5 &&
	"${CTR[@]}" tasks rm -f c4 && "${CTR[@]}" containers rm c4'

# 4b. a reboot takes the mount (skiffd keeps the registration): the next
# container mounts it again before it stacks on it
fs=$(awk -v d="$T/sn/" '$3 == "erofs" && index($2, d) == 1 { print $2 }' /proc/mounts)
t_ok "the image's lazy mount gone (as after a reboot)" umount "$fs"
t_is "... a new container finds it mounted again and reads right" \
	"$(run_prog c7 "$K/debian:skiff" "${CTR[@]}")" "$want"
t_grep "... the snapshotter says so" "is not mounted: mounting it again" "$T/sn.log"
t_is "... one lazy mount, one registration" "$(ctd_erofs_mounts)/$("$SKIFF" status --json | jq '.images | length')" 1/1

# 5. broken skiff images: the pull fails saying why, nothing stays mounted
# (their configs name their own layers, so their top layers are new to
# containerd)
put_manifest() {
	curl -sf --cacert "$CA/ca.crt" -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
		--data-binary @"$2" "https://$K/v2/debian/manifests/$1"
}
put_blob() {
	local loc
	loc=$(curl -sf --cacert "$CA/ca.crt" -X POST -D - -o /dev/null "https://$K/v2/debian/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	case $loc in http*) ;; *) loc=https://$K$loc ;; esac
	curl -sf --cacert "$CA/ca.crt" -X PUT -H "Content-Type: application/octet-stream" \
		--data-binary @"$2" "$loc&digest=$1"
}
# bad_image TAG BOOT_DIGEST: the image with its bootstrap layer replaced
bad_image() {
	curl -sf --cacert "$CA/ca.crt" -o "$T/config.json" "https://$K/v2/debian/blobs/$CONFIG"
	jq -c --arg b "$2" '.rootfs.diff_ids[-1] = $b' "$T/config.json" >"$T/bad-config.json"
	local cd cs
	cd=sha256:$(sha256sum <"$T/bad-config.json" | cut -c1-64)
	cs=$(stat -c %s "$T/bad-config.json")
	put_blob "$cd" "$T/bad-config.json" || return 1
	jq -c --arg b "$2" --arg cd "$cd" --argjson cs "$cs" --argjson bs "${3:-1000}" \
		'.layers[-1].digest = $b | .layers[-1].size = $bs | .config.digest = $cd | .config.size = $cs' \
		"$T/manifest.json" >"$T/bad-manifest.json"
	put_manifest "$1" "$T/bad-manifest.json"
}
head -c 100000 /dev/urandom >"$T/junk"
jd=sha256:$(sha256sum <"$T/junk" | cut -c1-64)
t_ok "an image whose bootstrap is 100 kB of random bytes" \
	eval 'put_blob "$jd" "$T/junk" && bad_image junk "$jd" 100000'
m0=$(ctd_erofs_mounts)
t_fails "... its pull fails" "${PULL[@]}" "$K/debian:junk"
t_grep "... saying the bootstrap is no skiff bootstrap" "lazy pull of docker://$K/debian@sha256:.*bootstrap" "$T/.out"
diag "$(tail -n 2 "$T/.out")"
t_is "... nothing mounted" "$(ctd_erofs_mounts)" "$m0"
head -c 100000 /dev/urandom >"$T/junk2"
jd2=sha256:$(sha256sum <"$T/junk2" | cut -c1-64)
t_ok "an image whose bootstrap the registry lost" eval 'put_blob "$jd2" "$T/junk2" && bad_image lost "$jd2" 100000 &&
	curl -sf --cacert "$CA/ca.crt" -X DELETE "https://$K/v2/debian/blobs/$jd2"'
t_fails "... its pull fails" "${PULL[@]}" "$K/debian:lost"
t_grep "... saying the registry has no such bootstrap" \
	"lazy pull of .*bootstrap [0-9a-f]{64}: $K/debian: [0-9a-f]{64}: HTTP 404 .*BLOB_UNKNOWN" "$T/.out"
diag "$(tail -n 1 "$T/.out")"
t_is "... nothing mounted" "$(ctd_erofs_mounts)" "$m0"
t_is "containerd and the snapshotter keep working" "$("${CTR[@]}" run --rm --snapshotter skiff \
	"$K/debian:skiff" c6 cat /etc/skiff-test 2>&1)" "skiff test"

# 5b. a registry that fails mid-pull: a front (servers/faulty_http.py)
# passes the registry's answers on until told to fail. containerd gets the
# manifest and config, then every read of the bootstrap fails: the pull
# fails saying why and mounts nothing; the same pull works once the
# registry is well, and a registry that lies about data bytes is caught.
# A new conversion (512K chunks): nothing of it is cached yet.
t_ok "skiff convert a new image (512K chunks)" "$SKIFF" convert -q --chunk-size 512K \
	--ca-file "$CA/ca.crt" "docker://$K/debian:oci" "docker://$K/debian:flaky" || done_testing
fport=$(free_port)
"$PY" "$ROOT/tests/servers/faulty_http.py" "$T" "$fport" --tls "$CA/server.crt" "$CA/server.key" \
	--upstream "https://$K" --cafile "$CA/ca.crt" 2>>"$T/faulty.log" &
_n_pids+=($!)
t_ok "a faulty front of the registry on 127.0.0.1:$fport" wait_port "$fport" || done_testing
F=127.0.0.1:$fport
mkdir -p "$T/certs.d/$F"
printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n' "$F" "$F" "$CA/ca.crt" \
	>"$T/certs.d/$F/hosts.toml"
front() { curl -sf --cacert "$CA/ca.crt" -X POST --data "${2:-}" "https://$F/$1" >/dev/null; }
# the front's log: "FAULT PATH" per request for paths with $1
front_log() {
	curl -sf --cacert "$CA/ca.crt" "https://$F/_log" | jq -r --arg m "$1" \
		'select(.path | contains($m)) | "\(.fault) \(.path)"'
}
curl -sf --cacert "$CA/ca.crt" -o "$T/flaky.json" \
	-H "Accept: application/vnd.oci.image.manifest.v1+json" "https://$K/v2/debian/manifests/flaky"
FBOOT=$(jq -r '.layers[-1].digest' "$T/flaky.json")
FBLOB=$(jq -r '.layers[0].digest' "$T/flaky.json")
n_img=$("$SKIFF" status --json | jq '.images | length')
t_ok "the front fails every read of the bootstrap (503)" \
	front _fault "{\"kind\": \"503\", \"count\": 1000, \"match\": \"$FBOOT\"}"
t_fails "... the pull fails" "${PULL[@]}" "$F/debian:flaky"
t_grep "... saying the registry failed, how often it was asked" \
	"lazy pull of docker://$F/debian@sha256:.*bootstrap $(cut -c8- <<<"$FBOOT"): GET https://$F/v2/debian/blobs/$FBOOT: HTTP 503 \(5 attempts\)" "$T/.out"
diag "$(tail -n 1 "$T/.out")"
t_ok "... after containerd had the manifest" test "$(front_log /manifests/ | grep -c ^null)" -ge 1
t_is "... and the config" "$(front_log "$(jq -r .config.digest "$T/flaky.json")" | grep -c ^null)" 1
t_ok "... skiffd asked for the bootstrap a bounded number of times" \
	test "$(front_log "$FBOOT" | grep -c ^503)" -ge 1 -a "$(front_log "$FBOOT" | grep -c ^503)" -le 20
t_is "... nothing mounted" "$(ctd_erofs_mounts)" "$m0"
t_is "... nothing registered in skiffd" "$("$SKIFF" status --json | jq '.images | length')" "$n_img"
t_ok "the registry is well again but for one truncated answer of the bootstrap" \
	eval 'front _reset && front _fault "{\"kind\": \"truncate\", \"match\": \"$FBOOT\"}"'
t_ok "... the same pull works" "${PULL[@]}" "$F/debian:flaky"
t_is "... skiffd read the bootstrap again after the truncated answer" \
	"$(front_log "$FBOOT" | awk '{ print $1 }' | uniq | tr '\n' ' ')" "truncate null "
t_is "... one lazy mount more" "$(ctd_erofs_mounts)" "$((m0 + 1))"
v0=$(metric_sum skiff_verify_errors_total)
t_ok "the registry lies: every answer for a data blob has every byte flipped" \
	front _fault "{\"kind\": \"wrong\", \"count\": 1000, \"match\": \"$FBLOB\"}"
out=$(run_prog f1 "$F/debian:flaky" "${CTR[@]}")
t_grep "... a container of the image gets I/O errors, not the lies" "[Ii]nput/output error" <(echo "$out")
diag "$(head -n 2 <<<"$out")"
t_ok "... skiffd caught them" test "$(metric_sum skiff_verify_errors_total)" -gt "$v0"
t_ok "the registry lies once more, then tells the truth" \
	eval 'front _reset && front _fault "{\"kind\": \"wrong\", \"match\": \"$FBLOB\"}"'
t_is "... a container of the image reads it right: nothing of the lies was kept" \
	"$(run_prog f2 "$F/debian:flaky" "${CTR[@]}")" "$want"
t_is "... the lie was told and read again" "$(front_log "$FBLOB" | awk '{ print $1 }' | uniq | head -n 2 | tr '\n' ' ')" \
	"wrong null "

# 6. a private registry (bearer tokens): skiffd gets its credentials only
# from the pull. The image is converted anew (other chunks, other layers),
# so that nothing of it is in skiffd's cache or containerd's snapshots.
start_token_registry "$CA" || done_testing
P=127.0.0.1:$REGISTRY_PORT
mkdir -p "$T/certs.d/$P" "$T/docker"
printf 'server = "https://%s"\n[host."https://%s"]\n  ca = "%s"\n' "$P" "$P" "$CA/ca.crt" \
	>"$T/certs.d/$P/hosts.toml"
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$P" "$(printf skiff:secret | base64)" >"$T/docker/config.json"
t_ok "skiff convert into the private registry (256K chunks)" "$SKIFF" convert -q --chunk-size 256K \
	--ca-file "$CA/ca.crt" --docker-config "$T/docker/config.json" \
	"docker://$K/debian:oci" "docker://$P/private/debian:skiff" || done_testing
mkdir -p "$T/by-hand"
api_creds() {
	curl -s -o /dev/null -w '%{http_code}' --unix-socket "$SKIFF_SOCKET" -X POST --data "$1" \
		http://skiffd/v1/credentials
}
t_is "skiffd refuses credentials for a registry that is not HOST[:PORT]" \
	"$(api_creds '{"registry": "a/b", "username": "u", "password": "p"}')" 400
t_is "... and a user without a password" "$(api_creds '{"registry": "a", "username": "u"}')" 400
t_is "... and a body that is not an object" "$(api_creds '[1]')" 400
t_fails "skiffd has no credentials for it: skiff mount by hand fails" \
	"$SKIFF" mount "docker://$P/private/debian:skiff" "$T/by-hand"
t_grep "... the registry refusing it" "HTTP 401.*authentication required" "$T/.out"
t_fails "a pull with a wrong password fails" "${PULL[@]}" --user skiff:wrong "$P/private/debian:skiff"
t_grep "... before skiffd is handed them" "the registry did not take the credentials.*401" "$T/.out"
t_ok "... which has none" test ! -e "$T/work/auth.json"
nt=$(grep -c '"who": "skiff"' "$T/tokens.log")
t_ok "a pull with the password" "${PULL[@]}" --user skiff:secret "$P/private/debian:skiff"
t_is "... a container of it reads the image right" \
	"$(run_prog p1 "$P/private/debian:skiff" "${CTR[@]}")" "$want"
t_ok "... skiffd fetched with tokens for the user" test "$(grep -c '"who": "skiff"' "$T/tokens.log")" -gt "$nt"
t_is "... keeping the credentials for root alone" "$(stat -c %a "$T/work/auth.json")" 600
t_no_grep "... never showing them" "secret" <("$SKIFF" status --json 2>&1; cat "$T/skiffd.log" "$T/sn.log")
t_ok "... and it keeps them through a restart: skiff mount by hand works now" \
	eval 'kill -KILL "$(holder_pid)" && logged "adopted the fanotify fd of a dead holder.*" 60 &&
	for _ in $(seq 1 100); do "$SKIFF" status >/dev/null 2>&1 && break; sleep 0.1; done &&
	skiff_mount "docker://$P/private/debian:skiff" "$T/by-hand" && skiff_umount "$T/by-hand"'

# 6b. kubelet's way to a private registry: its image pull secret comes
# with the CRI PullImage, which containerd's CRI plugin uses but passes to
# no snapshotter. skiff-snapshotter's image service (kubelet's image
# endpoint, in front of containerd's) hands it to skiffd. skiffd forgets
# what it has first (as on a new node), and the image is new to it.
t_ok "skiff convert another private image (128K chunks)" "$SKIFF" convert -q --chunk-size 128K \
	--ca-file "$CA/ca.crt" --docker-config "$T/docker/config.json" \
	"docker://$K/debian:oci" "docker://$P/private/crid:skiff" || done_testing
t_ok "skiffd forgets the credentials it has" rm "$T/work/auth.json"
t_fails "... skiff mount of the image by hand fails" "$SKIFF" mount "docker://$P/private/crid:skiff" "$T/by-hand"
t_grep "... the registry refusing it" "HTTP 401" "$T/.out"
t_ok "CRI PullImage of an image of the open registry with a pull secret" \
	"$CRIPULL" "$CRI_SOCK" "$K/debian:skiff" skiff secret
t_grep "... the snapshotter handed skiffd nothing: that registry did not ask for it" \
	"$K/debian:skiff: the pull's credentials for $K: the registry did not ask for the credentials" "$T/sn.log"
t_fails "CRI PullImage with a pull secret for another registry: fails" \
	"$CRIPULL" "$CRI_SOCK" "$P/private/crid:skiff" skiff secret "https://other.example/v1/"
t_grep "... the snapshotter handed it to skiffd no more than containerd used it" \
	"private/crid:skiff: the pull's credentials are for https://other.example/v1/, not $P: not handed" "$T/sn.log"
t_ok "... which has none" test ! -e "$T/work/auth.json"
t_fails "CRI PullImage through skiff-snapshotter's image service, a wrong pull secret: fails" \
	"$CRIPULL" "$CRI_SOCK" "$P/private/crid:skiff" skiff wrong
t_grep "... containerd saying why" "401|unauthorized|authoriz" "$T/.out"
t_grep "... the snapshotter handed skiffd nothing" \
	"private/crid:skiff: the pull's credentials for $P: the registry did not take" "$T/sn.log"
t_ok "... which has none" test ! -e "$T/work/auth.json"
t_ok "CRI PullImage through it with the right pull secret" "$CRIPULL" "$CRI_SOCK" "$P/private/crid:skiff" skiff secret
t_grep "... the snapshotter handed it to skiffd" "private/crid:skiff: the pull's credentials for $P handed to skiffd" \
	"$T/sn.log"
t_is "... a container of it reads the image right" \
	"$(run_prog k2 "$P/private/crid:skiff" "${CTR_K8S[@]}")" "$want"
t_grep "... skiffd has them" "\"$P\"" "$T/work/auth.json"
t_grep "... the image service passes the other calls on: ListImages lists it" \
	"^$P/private/crid:skiff\$" <("$CRIPULL" "$CRI_SOCK" --list 2>&1)
t_fails "... and refuses what is not the image service (kubelet asks containerd for that)" \
	"$CRIPULL" "$CRI_SOCK" --version
t_grep "... saying so" "Unimplemented.*serves the CRI image service only" "$T/.out"
t_is "... which containerd answers" "$("$CRIPULL" "$CTD_SOCK" --version 2>&1)" containerd
t_ok "... the image removed from the CRI namespace" \
	eval '"${CTR_K8S[@]}" images rm --sync $("${CTR_K8S[@]}" images ls -q)'

# 7. removing it all
t_ok "remove the images" "${CTR[@]}" images rm --sync "$K/debian:skiff" "$K/debian:again" "$K/debian:oci" \
	"$F/debian:flaky" "$P/private/debian:skiff"
# snapshots ls prints a header line
snaps() { "${CTR[@]}" snapshots --snapshotter skiff ls 2>/dev/null | tail -n +2 | wc -l; }
t_ok "... containerd's garbage collection removes every snapshot" \
	eval 'for _ in $(seq 1 100); do [ "$(snaps)" = 0 ] && break; sleep 0.1; done; [ "$(snaps)" = 0 ]'
t_is "... no lazy mount left" "$(ctd_erofs_mounts)" 0
t_is "... skiffd has no image left" "$("$SKIFF" status --json | jq '.images | length')" 0
t_is "... no snapshot directory left" "$(ls "$T/sn/snapshots" | wc -l)" 0
t_is "... no container or task" "$("${CTR[@]}" containers ls -q)$(ctd_tasks)" ""
t_is "... no shim" "$(pgrep -fc "containerd-shim-runc-v2 .*-address $CTD_SOCK")" 0
t_is "... no mount of the test's but the registry's" \
	"$(awk -v d="$T/" 'index($2, d) == 1' /proc/mounts | wc -l)" 0
done_testing
