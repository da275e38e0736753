#!/usr/bin/env bash
# The shared tier (issue 17), measured on one `murakumo up --redis` site
# (real WordPress, php-fpm, MariaDB and Redis), in one run:
#
#   1. A new replica's first minute. 100 URLs (WordPress pages: its posts'
#      404 template under 100 paths, each a full theme render), warmed into
#      Redis through the site's own edge. Then a fresh edge with a cold
#      memory (L1) but the warm Redis (L2), and a fresh edge without the
#      shared cache (today's cold edge), each under the same mixed load over
#      the 100 URLs: PHP renders (the edge's murakumo_upstream_seconds_count),
#      requests/s and p99.
#   2. An L2 hit against an L1 hit, side by side: the warm edge (every
#      request an L1 hit) and an edge whose L1 holds ~10 of the pages (1 MiB),
#      so most requests are L2 hits: requests/s, p99, and the L2 lookup's
#      mean time (murakumo_shared_cache_lookup_seconds).
#   3. Uncached (logged-in) page time with and without the object cache:
#      the admin dashboard, logged in, through the edge, mean of N requests,
#      with the drop-in in place and moved away.
#
# Usage: bench/shared_cache.sh [seconds per run, default 20]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-20}"
dir="$(mktemp -d /tmp/murakumo-shared-bench.XXXXXX)"
chmod 755 "$dir"
port=18579; ops=18589
site="$dir/site"
bin="$repo/target/release/murakumo"

"$repo/scripts/install-deps"
for p in wrk redis-server php8.2-redis; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
done
(cd "$repo" && cargo build --release --locked -q --bin murakumo)

pids=()
cleanup() {
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    "$bin" down --dir "$site" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

"$bin" up --redis --dir "$site" --port "$port" --ops-port "$ops" --detach >/dev/null
host="localhost:$port"

# The 100 URLs.
lua="$dir/urls.lua"
cat > "$lua" <<'EOF'
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/bench-page-" .. math.random(1, 100) .. "/")
end
EOF

# A second edge on the site's configuration: $1 name, $2 its ports' base,
# $3 "shared" | "alone" | "tiny". 404 pages kept 10 minutes (the run is longer
# than not_found_ttl's default).
edge() {
    local name=$1 base=$2 kind=$3 conf="$dir/$1.toml"
    sed -e "s/127.0.0.1:$port\"/127.0.0.1:$base\"/" -e "s/127.0.0.1:$ops\"/127.0.0.1:$((base + 10))\"/" \
        "$site/murakumo.toml" > "$conf"
    if [ "$kind" = alone ]; then
        python3 - "$conf" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = re.sub(r"\n\[server\.shared_cache\]\n(?:[a-z_]+ = .*\n)+", "\n", s)
open(p, "w").write(s)
PY
    fi
    local memory="256MiB"
    [ "$kind" = tiny ] && memory="1MiB"
    printf '\n[site.cache]\nnot_found_ttl = "10m"\nmax_memory = "%s"\nmax_entry_size = "512KiB"\n' "$memory" >> "$conf"
    "$bin" serve --config "$conf" >"$dir/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((base + 10))/healthz" >/dev/null && break; sleep 0.1; done
    for _ in $(seq 1 100); do
        [ "$kind" = alone ] && break
        curl -s "http://127.0.0.1:$((base + 10))/metrics" | grep -q '^murakumo_shared_cache_up 1' && break; sleep 0.1
    done
}
metric() { curl -s "http://127.0.0.1:$(($1 + 10))/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
load() { # $1 port, $2 seconds: "requests/s p99"
    wrk -t2 -c16 -d"$2s" --latency -s "$lua" -H "Host: $host" "http://127.0.0.1:$1/" \
        | awk '/Requests\/sec/ { rps = $2 } / 99%/ { p99 = $2 } END { print rps, p99 }'
}

# Warmed into Redis through an edge of the bench's configuration (its 404
# pages kept 10 minutes; the site's own edge would keep them 1 minute).
edge warmer 18660 shared
for i in $(seq 1 100); do curl -s -o /dev/null -H "Host: $host" "http://127.0.0.1:18660/bench-page-$i/"; done

echo "== 1. a new replica's first ${secs}s: 100 URLs, 16 connections"
edge warm-l2 18600 shared
read -r rps p99 < <(load 18600 "$secs")
renders=$(metric 18600 'murakumo_upstream_seconds_count{site="wordpress"}')
echo "cold L1, warm Redis : ${renders:-0} PHP renders, $rps req/s, p99 $p99"
edge cold 18620 alone
read -r rps p99 < <(load 18620 "$secs")
renders=$(metric 18620 'murakumo_upstream_seconds_count{site="wordpress"}')
echo "cold edge, no Redis : ${renders:-0} PHP renders, $rps req/s, p99 $p99"

echo "== 2. L1 hit and L2 hit, side by side"
read -r rps p99 < <(load 18600 "$secs")
echo "L1 hits (warm edge)        : $rps req/s, p99 $p99"
edge tiny 18640 tiny
load 18640 3 >/dev/null   # its L1 settles at what 1 MiB holds
before_n=$(metric 18640 murakumo_shared_cache_lookup_seconds_count); before_s=$(metric 18640 murakumo_shared_cache_lookup_seconds_sum)
read -r rps p99 < <(load 18640 "$secs")
after_n=$(metric 18640 murakumo_shared_cache_lookup_seconds_count); after_s=$(metric 18640 murakumo_shared_cache_lookup_seconds_sum)
hits=$(metric 18640 murakumo_shared_cache_hits_total)
mean=$(python3 -c "n=$after_n-$before_n; print(f'{($after_s-$before_s)/n*1e3:.3f} ms over {n} lookups' if n else 'no lookups')")
echo "mostly L2 hits (1 MiB L1)  : $rps req/s, p99 $p99; L2 lookup mean $mean ($hits L2 hits in all)"

echo "== 3. a logged-in page (the dashboard), with and without the object cache"
jar="$dir/jar"
pw=$(cat "$site/secrets/admin-password")
curl -s -o /dev/null -c "$jar" -b "wordpress_test_cookie=WP%20Cookie%20check" -H "Host: $host" \
    --data "log=admin&pwd=$pw&wp-submit=Log+In&testcookie=1" "http://127.0.0.1:$port/wp-login.php"
dashboard() { # 30 dashboard views: mean, median, 90th percentile
    for _ in 1 2 3 4 5; do curl -s -o /dev/null -b "$jar" -H "Host: $host" "http://127.0.0.1:$port/wp-admin/"; done
    python3 - "$jar" "$host" "$port" <<'PY'
import subprocess, sys
jar, host, port = sys.argv[1:]
times = []
for _ in range(30):
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", "-b", jar, "-H", f"Host: {host}",
                          f"http://127.0.0.1:{port}/wp-admin/"], capture_output=True, text=True).stdout
    times.append(float(out))
times.sort()
print(f"mean {sum(times)/len(times)*1e3:.1f} ms, median {times[len(times)//2]*1e3:.1f} ms, p90 {times[int(len(times)*0.9)]*1e3:.1f} ms")
PY
}
echo "with the object cache    : $(dashboard)"
mv "$site/content/object-cache.php" "$dir/object-cache.php.off"
echo "without (no drop-in)     : $(dashboard)"
mv "$dir/object-cache.php.off" "$site/content/object-cache.php"
