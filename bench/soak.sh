#!/usr/bin/env bash
# Soak: mixed load on a real WordPress (a `murakumo up` site) through its
# own `murakumo serve` for N minutes, recording the edge's RSS and open file
# descriptors every minute: memory must stay flat and descriptors must not
# leak. The mix (wrk with bench/soak.lua): cached pages, uncached PHP (login
# form, searches with random terms), static files, 404s, refused paths,
# login POSTs beyond the rate limit.
#
# Usage: bench/soak.sh [minutes, default 30] [connections, default 32]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
minutes="${1:-30}"
conns="${2:-32}"
dir="$(mktemp -d /tmp/murakumo-soak.XXXXXX)"
chmod 755 "$dir"
port_up=18579; ops_up=18589; port=18580; ops=18590
site="$dir/site"

"$repo/scripts/install-deps"
dpkg-query -W -f='${Status}' wrk 2>/dev/null | grep -q "ok installed" \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
(cd "$repo" && cargo build --release --locked -q)
bin="$repo/target/release/murakumo"

edge_pid=""
trap '[ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null; "$bin" down --dir "$site" >/dev/null; rm -rf "$dir"' EXIT
"$bin" up --dir "$site" --port $port_up --ops-port $ops_up --detach >/dev/null
cat > "$dir/murakumo.toml" <<TOML
[server]
listen = ["127.0.0.1:$port"]
ops_listen = "127.0.0.1:$ops"
access_log = false
[[site]]
name = "soak"
hosts = ["localhost"]
root = "$site/wordpress"
php = ["unix:$site/run/php-public/php.sock"]
php_max_conns = 8
TOML
"$bin" serve --config "$dir/murakumo.toml" > "$dir/edge.log" 2>&1 &
edge_pid=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$ops/healthz" >/dev/null && break; sleep 0.2; done

sample() { # label
    local rss fds
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$edge_pid/status")
    fds=$(ls "/proc/$edge_pid/fd" | wc -l)
    printf '%-8s rss %6d KiB  fds %4d  connections %s\n' "$1" "$rss" "$fds" \
        "$(curl -s "http://127.0.0.1:$ops/metrics" | awk '/^murakumo_connections_open/ {print $2}')"
}
# Warm up (fills the page cache), then the baseline.
wrk -t2 -c"$conns" -d20s -H "Host: localhost:$port_up" -s "$repo/bench/soak.lua" "http://127.0.0.1:$port" >/dev/null
sleep 2
sample start
wrk -t2 -c"$conns" -d"${minutes}m" -H "Host: localhost:$port_up" -s "$repo/bench/soak.lua" "http://127.0.0.1:$port" > "$dir/wrk.txt" &
wrk_pid=$!
for m in $(seq "$minutes"); do sleep 60; sample "${m}m"; done
wait "$wrk_pid"
sleep 2
sample end
grep -E "requests in|Socket errors|Non-2xx|Latency" "$dir/wrk.txt"
curl -s "http://127.0.0.1:$ops/metrics" | grep -E '^murakumo_requests_total' | sort -t' ' -k2 -nr | head -12
