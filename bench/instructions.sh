#!/usr/bin/env bash
# User-space instructions per request of the edge's hit paths, counted by
# callgrind: exact and the same run after run whatever else the machine
# does, so one change's effect on a hit is seen without noise (requests/s
# on a shared 2-core machine cannot show a 3% change). docs/performance.md
# says how to read the figures.
#
# The edge runs under callgrind on a `murakumo up` site, is warmed, its
# counters are zeroed, `h2load --h1 -n REQUESTS -c 4` sends the requests,
# and the counters are dumped; the figure is the inclusive count of the
# runtime's task runner (every request's work, none of the idle loop) over
# REQUESTS. Callgrind runs the edge some 50x slower: the figures are
# instructions, not time.
#
# Usage: bench/instructions.sh [BINARY, default target/release/murakumo]
#                              [requests, default 10000]
# Prints one line per path, e.g.  cached page (plain)   15523, then the
# ceiling's (bench/ceiling, the same bytes from bare hyper) for both pages.
# Set KEEP=1 to keep the callgrind files (the directory is printed) for
# `callgrind_annotate --inclusive=yes --tree=calling FILE`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$repo/target/release/murakumo}")"
n="${2:-10000}"
dir="$(mktemp -d /tmp/murakumo-instr.XXXXXX)"
chmod 755 "$dir"
port=18680; ops=18690; port_up=18679; ops_up=18689
host="localhost:$port_up"
site="$dir/site"

"$repo/scripts/install-deps"
for tool in valgrind:valgrind h2load:nghttp2-client curl:curl; do
    command -v "${tool%%:*}" >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null
    }
done

pid=""
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    "$bin" down --dir "$site" >/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "callgrind files: $dir" >&2; else rm -rf "$dir"; fi
}
trap cleanup EXIT
"$bin" up --dir "$site" --port $port_up --ops-port $ops_up --detach >/dev/null

cat > "$dir/edge.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
ops_listen = "127.0.0.1:$ops"
access_log = false
[[site]]
name = "bench"
hosts = ["localhost"]
root = "$site/wordpress"
php = ["unix:$site/run/php-public/php.sock"]
php_max_conns = 8
TOML
(cd "$repo" && cargo build --release --locked -q --bin ceiling)
ceiling_bin="$repo/target/release/ceiling"

# under_callgrind NAME COMMAND...: starts COMMAND under callgrind; sets $pid.
under_callgrind() {
    local name="$1"; shift
    valgrind --tool=callgrind --callgrind-out-file="$dir/$name.out" "$@" 2> "$dir/$name.log" &
    pid=$!
}
# count NAME URL [HEADER]: instructions per request of the edge under
# callgrind as $pid, for h2load's requests to URL.
count() {
    local name="$1" url="$2" hdr="${3:-}" out file runs
    # Warm: the page stored, every thread's arenas and caches set up.
    for _ in 1 2 3; do curl -sf -o /dev/null -H "Host: $host" ${hdr:+-H "$hdr"} "$url"; done
    h2load --h1 -n 2000 -c 4 -H ":authority: $host" ${hdr:+-H "$hdr"} "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    out="$(h2load --h1 -n "$n" -c 4 -H ":authority: $host" ${hdr:+-H "$hdr"} "$url")"
    grep -q "0 failed, 0 errored" <<<"$out" || { echo "$name: h2load failed:" >&2; echo "$out" >&2; exit 1; }
    grep -q "status codes: $n 2xx" <<<"$out" || { echo "$name: not every answer was 2xx:" >&2; grep "status codes" <<<"$out" >&2; exit 1; }
    callgrind_control -d "$pid" >/dev/null 2>&1
    file="$(ls -t "$dir"/*.out.* | head -1)"
    runs="$(callgrind_annotate --inclusive=yes "$file" 2>/dev/null \
        | grep -E 'multi_thread::worker::Context::run_task' | head -1 | awk '{gsub(",", "", $1); print $1}')"
    printf "%-40s %8d\n" "$name" "$((runs / n))"
}
wait_up() { for _ in $(seq 1 120); do curl -s -o /dev/null "$1" && return; sleep 0.5; done; }

under_callgrind edge "$bin" serve --config "$dir/edge.toml"
edge_pid=$pid
wait_up "http://127.0.0.1:$ops/livez"

browser_ae="Accept-Encoding: gzip, deflate, br, zstd"
edge="http://127.0.0.1:$port"
count "cached page (plain)" "$edge/"
count "cached page (browser AE, br)" "$edge/" "$browser_ae"
count "static jquery.min.js (87 KB)" "$edge/wp-includes/js/jquery/jquery.min.js"
count "static simple-smile.png (1 KB)" "$edge/wp-includes/images/smilies/simple-smile.png"

# The ceiling (bench/ceiling) sending the very bytes of the two pages.
mkdir -p "$dir/canned"
curl -s -D "$dir/canned/plain.head" -o "$dir/canned/plain.body" -H "Host: $host" "$edge/"
curl -s -D "$dir/canned/br.head" -o "$dir/canned/br.body" -H "Host: $host" -H "$browser_ae" "$edge/"
kill -TERM "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
for form in plain br; do
    under_callgrind "ceiling-$form" "$ceiling_bin" --listen "127.0.0.1:$port" \
        --head "$dir/canned/$form.head" --body "$dir/canned/$form.body"
    wait_up "$edge/"
    case $form in
        plain) count "ceiling: cached page (plain)" "$edge/" ;;
        br) count "ceiling: cached page (br)" "$edge/" "$browser_ae" ;;
    esac
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
pid=""
