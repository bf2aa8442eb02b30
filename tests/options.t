#!/usr/bin/env bash
# skiffd's option table (loader/config.c) against its documentation and
# its command line. Every option `skiffd --dump-options` lists appears in
# skiffd.json(5) (a key, nested ones in their section) and in skiffd(8)
# (a flag) with its type, range and default exactly as the table states
# them, and in --help; every key and flag the man pages document is in
# the table. Through the real binary, a value just outside a range is
# refused from a flag and from a config file with one message, and the
# bounds are taken. Needs no root: nothing here starts the daemon.
. "$(dirname "$0")/lib.sh"

JSON5=$ROOT/man/skiffd.json.5
MAN8=$ROOT/man/skiffd.8
# flags that are no key of skiffd.json
FIXED="config ready-fd no-holder holder-abi dump-options help version"

t_ok "skiffd --dump-options" "$SKIFFD" --dump-options || done_testing
cp "$T/.out" "$T/opts.json"
t_ok "... prints a JSON array of options" jq -e 'type == "array" and length > 10' "$T/opts.json" ||
	done_testing
jq -r '.[] | [.key, .flag, .type, .summary, (.min // "-" | tostring), (.max // "-" | tostring)] | @tsv' \
	"$T/opts.json" >"$T/opts.tsv"
"$SKIFFD" --help >"$T/help" 2>&1
echo '{}' >"$T/empty.json"

# the man pages with troff's \- as -
sed 's/\\-/-/g' "$JSON5" >"$T/json5"
sed 's/\\-/-/g' "$MAN8" >"$T/man8"

# json5_block SECTION: the lines of skiffd.json(5) that describe the keys
# of SECTION ("" for the top level: up to "backend", without nested blocks)
json5_block() {
	if [ -z "$1" ]; then
		awk '/^\.B backend /{exit} /^\.RS/{d++} d==0{print} /^\.RE/{d--}' "$T/json5"
	else
		awk -v s="$1" '$0 ~ "^\\.B " s " "{on=1; next} on && /^\.RE/{exit} on{print}' "$T/json5"
	fi
}

# man8_para FLAG: the paragraph of skiffd(8)'s OPTIONS whose tag names
# --FLAG, joined into one line
man8_para() {
	awk -v f="--$1" '
		/^\.SH OPTIONS/{on=1; next}
		on && /^\.SH/{exit}
		on && /^\.TP/{if (p) exit; tag=1; next}
		on && tag{tag=0; n=split($0, w, /[ "]+/); for (i=1; i<=n; i++) if (w[i]==f) p=1; if (p) print; next}
		on && p{print}' "$T/man8" | tr '\n' ' '
}

# help_entry FLAG: the lines of --help from --FLAG's to the next flag's
help_entry() {
	awk -v f="--$1" '
		$0 ~ /^  (-., )?--|^      --/ {on=0; n=split($0, w, / +/); for (i=1; i<=n; i++) if (w[i]==f) on=1}
		on{print}' "$T/help" | tr '\n' ' '
}

while IFS=$'\t' read -r key flag type summary min max; do
	section=
	name=$key
	case $key in
	*.*) section=${key%%.*}; name=${key#*.} ;;
	esac
	want=".BR $name \" ($summary)\""
	json5_block "$section" >"$T/block"
	t_ok "skiffd.json(5) states $key as ($summary)" grep -qxF -- "$want" "$T/block"
	para=$(man8_para "$flag")
	t_ok "skiffd(8) documents --$flag" test -n "$para"
	case $para in
	*"($summary)"*) t_ok "skiffd(8) states --$flag as ($summary)" true ;;
	*) t_ok "skiffd(8) states --$flag as ($summary)" false; diag "paragraph: $para" ;;
	esac
	case $(help_entry "$flag") in
	*"($summary)"*) t_ok "--help states --$flag as ($summary)" true ;;
	*) t_ok "--help states --$flag as ($summary)" false; diag "help: $(help_entry "$flag")" ;;
	esac

	# through the binary: flags are read in order, so a value taken lets
	# --dump-options run (exit 0) and a refused one stops before it
	[ "$type" = integer ] || [ "$type" = size ] || continue
	if [ -n "$section" ]; then
		conf() { printf '{"%s": {"%s": %s}}\n' "$section" "$name" "$1" >"$T/c.json"; }
	else
		conf() { printf '{"%s": %s}\n' "$key" "$1" >"$T/c.json"; }
	fi
	bad=("$((max + 1))")
	[ "$min" -gt 0 ] && bad+=("$((min - 1))")
	for v in "${bad[@]}"; do
		t_fails_msg "--$flag $v is refused" "^skiffd: --$flag must be " \
			"$SKIFFD" --config "$T/empty.json" "--$flag" "$v" --dump-options
		flagmsg=$(grep -m1 '^skiffd: ' "$T/.out")
		flagmsg=${flagmsg#"skiffd: --$flag "}
		conf "$v"
		t_fails_msg "$key $v in a config file is refused" "^skiffd: $T/c.json: \"$key\" must be " \
			"$SKIFFD" --config "$T/c.json" --dump-options
		filemsg=$(grep -m1 '^skiffd: ' "$T/.out")
		filemsg=${filemsg#"skiffd: $T/c.json: \"$key\" "}
		t_is "... with the flag's message" "$filemsg" "$flagmsg"
	done
	for v in "$min" "$max"; do
		t_ok "--$flag $v is taken" "$SKIFFD" --config "$T/empty.json" "--$flag" "$v" --dump-options
		conf "$v"
		t_ok "$key $v in a config file is taken" "$SKIFFD" --config "$T/c.json" --dump-options
	done
done <"$T/opts.tsv"

# the other way: what the man pages document is in the table
for section in "" prefetch; do
	while read -r name; do
		key=${section:+$section.}$name
		t_ok "skiffd.json(5)'s $key is in the table" \
			jq -e --arg k "$key" 'any(.[]; .key == $k)' "$T/opts.json"
	done < <(json5_block "$section" | sed -n 's/^\.BR \([a-z_]*\) " (.*/\1/p')
done
while read -r flag; do
	case " $FIXED " in
	*" $flag "*) t_ok "skiffd(8)'s --$flag is known to skiffd" grep -qF -- "--$flag" "$T/help" ;;
	*) t_ok "skiffd(8)'s --$flag is in the table" \
		jq -e --arg f "$flag" 'any(.[]; .flag == $f)' "$T/opts.json" ;;
	esac
done < <(awk '/^\.SH OPTIONS/{on=1; next} on && /^\.SH/{exit} on && /^\.TP/{getline; print}' "$T/man8" |
	grep -oE -- '--[a-z-]+' | sed 's/^--//')

# every flag spelling that worked before the table still parses
t_ok "-j and every long flag parse" "$SKIFFD" --config "$T/empty.json" -j 4 --cache-dir /x \
	--work-dir /y --socket /z --frontend fanotify --threads 2 --merge-limit 4M --readahead 0 \
	--ahead 32M --log-level debug --prefetch-threads 3 --prefetch-bandwidth 10M --no-holder \
	--ready-fd 1 --dump-options
t_fails_msg "an unknown flag is refused" "usage: skiffd" "$SKIFFD" --config "$T/empty.json" --nope

done_testing
