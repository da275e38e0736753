#!/usr/bin/env bash
# murakumo vs nginx fastcgi_cache, side by side, one run, same machine, same
# WordPress on the same php-fpm pool (the public pool of a `murakumo up`
# site; its own edge stays idle on another port). Reports requests/s and p99 for each
# workload and the ratio murakumo/nginx.
#
#   cached page, plain              murakumo HIT      vs nginx fastcgi_cache HIT
#   cached page, browser encoding   murakumo HIT (br) vs nginx HIT + gzip on (per hit)
#   uncached PHP page               murakumo BYPASS   vs nginx cache bypass
#   static asset                    murakumo          vs nginx sendfile
#
# nginx is tuned as it should be: keepalive to php-fpm (fastcgi_keep_conn),
# tcp_nopush off, access_log off, 2 workers, open_file_cache.
#
# Usage: bench/compare.sh [seconds per run, default 10] [connections, default 64]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
conns="${2:-64}"
dir="$(mktemp -d /tmp/murakumo-bench.XXXXXX)"
chmod 755 "$dir"   # the stack's accounts (mysql, www-data, murakumo) must reach it
port_m=18480; port_n=18481; port_ng=18482; ops=18490; port_up=18479; ops_up=18489
host="localhost:$port_up"   # WordPress' home; both servers get this Host header
site="$dir/site"

"$repo/scripts/install-deps"
missing=(); for p in nginx-light wrk; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; fi
service nginx stop >/dev/null 2>&1 || true
(cd "$repo" && cargo build --release --locked -q)

trap '"$repo/target/release/murakumo" down --dir "$site" >/dev/null; rm -rf "$dir"' EXIT
"$repo/target/release/murakumo" up --dir "$site" --port $port_up --ops-port $ops_up --detach >/dev/null
mkdir -p "$dir/run" "$dir/logs"
php_sock="$site/run/php-public/php.sock"

cat > "$dir/murakumo.toml" <<TOML
[server]
listen = ["127.0.0.1:$port_m"]
ops_listen = "127.0.0.1:$ops"
access_log = false
[[site]]
name = "bench"
hosts = ["localhost"]
root = "$site/wordpress"
php = ["unix:$php_sock"]
php_max_conns = 8
TOML

mkdir -p "$dir/nginx-cache"
nginx_server() { # port gzip
cat <<CONF
    server {
        listen 127.0.0.1:$1 reuseport;
        server_name localhost;
        root $site/wordpress;
        index index.php;
        gzip $2;
        gzip_types text/css application/javascript application/json image/svg+xml;
        set \$skip 0;
        if (\$request_method = POST) { set \$skip 1; }
        if (\$query_string != "") { set \$skip 1; }
        if (\$http_cookie ~* "wordpress_logged_in|wordpress_sec|wp-postpass|comment_author") { set \$skip 1; }
        location / { try_files \$uri \$uri/ /index.php?\$args; }
        location ~ \.php\$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_param HTTP_HOST \$http_host;
            fastcgi_pass php;
            fastcgi_keep_conn on;
            fastcgi_cache wp;
            fastcgi_cache_key \$scheme\$http_host\$request_uri;
            fastcgi_cache_valid 200 301 10m;
            fastcgi_cache_bypass \$skip;
            fastcgi_no_cache \$skip;
            fastcgi_cache_lock on;
            add_header X-Cache \$upstream_cache_status;
        }
        location ~* \.(css|js|png|jpg|svg|woff2?)\$ { expires 7d; }
    }
CONF
}
cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
pid $dir/run/nginx.pid;
error_log $dir/logs/nginx-error.log;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    client_body_temp_path $dir/nginx-tmp;
    fastcgi_temp_path $dir/nginx-tmp;
    fastcgi_cache_path $dir/nginx-cache levels=1:2 keys_zone=wp:64m max_size=256m inactive=1h;
    upstream php { server unix:$php_sock; keepalive 8; }
$(nginx_server $port_n off)
$(nginx_server $port_ng on)
}
CONF
mkdir -p "$dir/nginx-tmp"

browser_ae="Accept-Encoding: gzip, deflate, br, zstd"
asset="/wp-includes/js/jquery/jquery.min.js"
warm() { for p in "$@"; do for _ in 1 2 3; do
    curl -s -o /dev/null -H "Host: $host" "http://127.0.0.1:$p/"
    curl -s -o /dev/null -H "Host: $host" -H "$browser_ae" "http://127.0.0.1:$p/"
done; done; }
check() { curl -s -o /dev/null -D - -H "Host: $host" "${@:2}" "http://127.0.0.1:$1/" | tr -d '\r' | grep -iE '^(x-cache|content-encoding)' | tr '\n' ' '; }

# run PORT PATH [header] -> "rps p99ms"
run() {
    local out rps p99 errs
    out="$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Host: $host" ${3:+-H "$3"} "http://127.0.0.1:$1$2")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p99="$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")"
    errs="$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')"
    [ -n "$errs" ] && echo "  ($1$2: $errs)" >&2
    echo "$rps $p99"
}
# median of "rps p99" lines, by rps
median() { sort -n -k1 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }
rounds_n=3

# Cached pages and static files never reach PHP: both servers run side by
# side and take turns, round after round, so machine noise hits both alike.
echo "== murakumo and nginx, cached and static workloads (${rounds_n} rounds each, medians)"
"$repo/target/release/murakumo" serve --config "$dir/murakumo.toml" 2> "$dir/logs/murakumo.log" &
m_pid=$!
nginx -c "$dir/nginx.conf" -g 'daemon off;' &
n_pid=$!
sleep 1
warm $port_m $port_n $port_ng
echo "murakumo: $(check $port_m)| with browser AE: $(check $port_m -H "$browser_ae")"
echo "nginx:    $(check $port_n)| gzip server with browser AE: $(check $port_ng -H "$browser_ae")"
m=(); n=()
for i in 0 1 2; do
    case $i in
        0) mp=(/ ""); np=("$port_n" / "") ;;
        1) mp=(/ "$browser_ae"); np=("$port_ng" / "$browser_ae") ;;
        2) mp=("$asset" ""); np=("$port_n" "$asset" "") ;;
    esac
    mr=(); nr=()
    for ((r = 0; r < rounds_n; r++)); do
        mr+=("$(run $port_m "${mp[0]}" "${mp[1]}")")
        nr+=("$(run "${np[0]}" "${np[1]}" "${np[2]}")")
    done
    m[$i]="$(printf '%s\n' "${mr[@]}" | median)"
    n[$i]="$(printf '%s\n' "${nr[@]}" | median)"
done
kill -TERM $n_pid $m_pid; wait $n_pid $m_pid 2>/dev/null || true

# Uncached pages: one server at a time, since a server's idle keep-alive
# connections pin php-fpm workers. php-fpm's concurrency (8 workers): more
# connections only queue, and wrk's 2 s timeout would abort requests.
uncached() {
    conns=8 secs=3 run "$1" '/?bench=warmup' >/dev/null
    # wrk stops by dropping its in-flight requests, which aborts them in PHP
    # (closing their FastCGI connections): refill with requests that finish.
    local urls=(); for i in $(seq 16); do urls+=(-o /dev/null "http://127.0.0.1:$1/?bench=refill$i"); done
    curl -s --parallel --parallel-max 8 -H "Host: $host" "${urls[@]}" 2>/dev/null
    [ "$1" = "$port_m" ] && curl -s "http://127.0.0.1:$ops/metrics" > "$dir/metrics.before"
    conns=8 secs=$((secs < 20 ? 20 : secs)) run "$1" '/?bench=uncached'
}
# ABBA order (murakumo, nginx, nginx, murakumo), each server's two turns
# averaged, so that neither gains from running on a warmer stack.
turn() { # m|n -> "rps p99"
    if [ "$1" = m ]; then
        "$repo/target/release/murakumo" serve --config "$dir/murakumo.toml" 2>> "$dir/logs/murakumo.log" &
    else
        nginx -c "$dir/nginx.conf" -g 'daemon off;' &
    fi
    local pid=$! port
    [ "$1" = m ] && port=$port_m || port=$port_n
    sleep 1
    uncached "$port"
    [ "$1" = m ] && curl -s "http://127.0.0.1:$ops/metrics" > "$dir/metrics.after"
    kill -TERM $pid; wait $pid 2>/dev/null || true
}
mean() { awk '{r+=$1; p+=$2} END {printf "%.2f %.2f\n", r/NR, p/NR}'; }
echo "== uncached, one server at a time (ABBA)"
u_m=(); u_n=()
for who in m n n m; do
    r="$(turn $who)"
    [ $who = m ] && u_m+=("$r") || u_n+=("$r")
done
m[3]="$(printf '%s\n' "${u_m[@]}" | mean)"
n[3]="$(printf '%s\n' "${u_n[@]}" | mean)"

printf "\n%-34s %14s %10s %14s %10s %8s\n" workload "murakumo r/s" "p99 ms" "nginx r/s" "p99 ms" ratio
names=("cached page (plain)" "cached page (browser AE vs gzip)" "static asset ($(basename $asset))" "uncached PHP page")
for i in 0 1 2 3; do
    read -r mr mp <<<"${m[$i]}"; read -r nr np <<<"${n[$i]}"
    printf "%-34s %14.0f %10.2f %14.0f %10.2f %7.2fx\n" "${names[$i]}" "$mr" "$mp" "$nr" "$np" "$(echo "$mr / $nr" | bc -l)"
done

# FastCGI connection reuse during the measured uncached run (after warm-up).
counter() { awk -v n="$1" '$1 ~ "^"n"[{]" {s+=$2} END {print s+0}' "$2"; }
opened=$(( $(counter murakumo_fastcgi_connections_opened_total "$dir/metrics.after") - $(counter murakumo_fastcgi_connections_opened_total "$dir/metrics.before") ))
reused=$(( $(counter murakumo_fastcgi_connections_reused_total "$dir/metrics.after") - $(counter murakumo_fastcgi_connections_reused_total "$dir/metrics.before") ))
echo
echo "murakumo FastCGI connections during the uncached run: opened $opened, reused $reused ($(echo "scale=2; 100 * $reused / ($opened + $reused)" | bc)% reuse)"
echo "machine: $(nproc) cores; wrk -t2 -c$conns -d${secs}s ; cached/static: median of $rounds_n alternating rounds; uncached: -c8, at least 20 s after a 3 s warm-up, ABBA mean of 2 turns each; $(date -u +%Y-%m-%dT%H:%MZ)"
