#!/usr/bin/env bash
# Two murakumo builds side by side on the same WordPress (a `murakumo up`
# site), for "this change must not cost hit speed": both edges run at once
# with the same configuration and take turns, round after round, so machine
# noise hits both alike. Reports requests/s, p99 and the edge's CPU time per
# request (from /proc) for a cached page (plain and with a browser's
# Accept-Encoding) and a static asset, medians of the rounds, and B/A.
#
# Usage: bench/ab.sh A_BINARY [B_BINARY, default target/release/murakumo]
#                    [seconds per run, default 10] [rounds, default 5]
# e.g.:  git worktree add /tmp/old main~3 && (cd /tmp/old && cargo build --release)
#        bench/ab.sh /tmp/old/target/release/murakumo
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
a_bin="$(realpath "${1:?usage: bench/ab.sh A_BINARY [B_BINARY] [seconds] [rounds]}")"
b_bin="$(realpath "${2:-$repo/target/release/murakumo}")"
secs="${3:-10}"
rounds="${4:-5}"
conns=64
dir="$(mktemp -d /tmp/murakumo-ab.XXXXXX)"
chmod 755 "$dir"
port_a=18580; port_b=18581; ops_a=18590; ops_b=18591; port_up=18579; ops_up=18589
host="localhost:$port_up"
site="$dir/site"

"$repo/scripts/install-deps"
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }

pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait 2>/dev/null; "$b_bin" down --dir "$site" >/dev/null; rm -rf "$dir"' EXIT
"$b_bin" up --dir "$site" --port $port_up --ops-port $ops_up --detach >/dev/null

config() { # port ops
cat <<TOML
[server]
listen = ["127.0.0.1:$1"]
ops_listen = "127.0.0.1:$2"
access_log = false
[[site]]
name = "bench"
hosts = ["localhost"]
root = "$site/wordpress"
php = ["unix:$site/run/php-public/php.sock"]
php_max_conns = 8
TOML
}
config $port_a $ops_a > "$dir/a.toml"
config $port_b $ops_b > "$dir/b.toml"
"$a_bin" serve --config "$dir/a.toml" 2> "$dir/a.log" & pid_a=$!; pids+=($pid_a)
"$b_bin" serve --config "$dir/b.toml" 2> "$dir/b.log" & pid_b=$!; pids+=($pid_b)
sleep 1

browser_ae="Accept-Encoding: gzip, deflate, br, zstd"
asset="/wp-includes/js/jquery/jquery.min.js"
for p in $port_a $port_b; do for _ in 1 2 3; do
    curl -sf -o /dev/null -H "Host: $host" "http://127.0.0.1:$p/"
    curl -sf -o /dev/null -H "Host: $host" -H "$browser_ae" "http://127.0.0.1:$p/"
done; done
for p in $port_a $port_b; do
    echo "127.0.0.1:$p: $(curl -s -o /dev/null -D - -H "Host: $host" -H "$browser_ae" "http://127.0.0.1:$p/" | tr -d '\r' | grep -iE '^(x-cache|content-encoding)' | tr '\n' ' ')"
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run PORT PID PATH [header] -> "rps p99ms cpu_us_per_request"
run() {
    local out rps p99 reqs t0 t1
    t0=$(ticks "$2")
    out="$(wrk -t2 -c$conns -d"${secs}s" --latency -H "Host: $host" ${4:+-H "$4"} "http://127.0.0.1:$1$3")"
    t1=$(ticks "$2")
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    p99="$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")"
    awk '/Non-2xx|Socket errors/ {print "  (" p "): " $0}' p="$1$3" <<<"$out" >&2
    echo "$rps $p99 $(echo "($t1 - $t0) * 1000000 / $(getconf CLK_TCK) / $reqs" | bc -l)"
}
median() { sort -n -k1 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

names=("cached page (plain)" "cached page (browser AE, br)" "static asset ($(basename $asset))")
printf "\n%-30s %10s %8s %8s %10s %8s %8s %7s\n" workload "A r/s" "p99 ms" "cpu µs" "B r/s" "p99 ms" "cpu µs" "B/A"
for i in 0 1 2; do
    case $i in 0) path=/; hdr="" ;; 1) path=/; hdr="$browser_ae" ;; 2) path="$asset"; hdr="" ;; esac
    ra=(); rb=()
    for ((r = 0; r < rounds; r++)); do
        # Alternate who goes first, so neither always runs on a warmer machine.
        if ((r % 2 == 0)); then
            ra+=("$(run $port_a $pid_a "$path" "$hdr")"); rb+=("$(run $port_b $pid_b "$path" "$hdr")")
        else
            rb+=("$(run $port_b $pid_b "$path" "$hdr")"); ra+=("$(run $port_a $pid_a "$path" "$hdr")")
        fi
    done
    read -r ar ap ac <<<"$(printf '%s\n' "${ra[@]}" | median)"
    read -r br bp bc_ <<<"$(printf '%s\n' "${rb[@]}" | median)"
    printf "%-30s %10.0f %8.2f %8.1f %10.0f %8.2f %8.1f %6.2fx\n" "${names[$i]}" "$ar" "$ap" "$ac" "$br" "$bp" "$bc_" "$(echo "$br / $ar" | bc -l)"
done
echo
echo "A: $a_bin"
echo "B: $b_bin"
echo "machine: $(nproc) cores; wrk -t2 -c$conns -d${secs}s, medians of $rounds alternating rounds; $(date -u +%Y-%m-%dT%H:%MZ)"
