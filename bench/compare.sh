#!/usr/bin/env bash
# murakumo side by side with the servers users pick instead, and with the
# ceiling, in one run on one machine, on the same WordPress and the same
# php-fpm pool (the public pool of a `murakumo up` site, whose own edge
# stays idle on another port):
#
#   murakumo   the edge under test (page cache, compressed once when stored)
#   nginx      fastcgi_cache (gzip per hit where the client accepts it),
#              tuned as it should be: keepalive to php-fpm, tcp_nopush off,
#              access_log off, 2 workers, open_file_cache, sendfile
#   varnish    7.x in front of nginx (no nginx cache there), a WordPress VCL:
#              passes on WordPress's cookies and on queries, caches anonymous
#              pages 10 min. Two of them: one gzips once when storing
#              (do_gzip), for clients that accept gzip; one stores what the
#              backend sent, for the plain and static workloads (the first
#              would gunzip its stored copy on every plain hit)
#   ceiling    bench/ceiling: a bare hyper server answering every request
#              with the very bytes murakumo sends (status, headers, body),
#              captured from murakumo at the start: the best any hyper-based
#              edge can do here
#
# Workloads: cached page plain; cached page with a browser's Accept-Encoding
# (br from murakumo and its ceiling, gzip from nginx and varnish); cached page
# over h2 with TLS (h2load; varnish speaks no TLS); the 87 KB jquery.min.js;
# a 1 KB icon; uncached PHP. For each: requests/s, p99 (h2: mean), and the
# server's CPU time per request (user+system of its processes from /proc,
# over the requests served), far steadier than requests/s on a 2-core machine
# where wrk competes for the cores. Every round is printed; the table shows
# medians (uncached: means of an ABBA order). Then murakumo against the
# ceiling in pairs of 5 s runs back to back (PAIRS pairs, default 8; each
# pair's ratios and their median), and the memory the page cache holds per
# stored entry beyond its bodies.
#
# Usage: bench/compare.sh [seconds per run, default 10] [rounds, default 3]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
rounds="${2:-3}"
conns=64
dir="$(mktemp -d /tmp/murakumo-bench.XXXXXX)"
chmod 755 "$dir"   # the stack's accounts (mysql, www-data, murakumo) must reach it
port_up=18479; ops_up=18489          # the `murakumo up` site (its edge idles)
m_http=18480; m_tls=18483; m_ops=18490
n_http=18481; n_gzip=18482; n_tls=18484; n_back=18485
v_http=18486; v_gzip=18487
c_plain=18491; c_br=18492; c_js=18493; c_icon=18494; c_tls=18495
host="localhost:$port_up"   # WordPress' home; every server gets this Host
site="$dir/site"
bin="$repo/target/release"

"$repo/scripts/install-deps"
need=(nginx-light wrk varnish nghttp2-client openssl bc)
missing=(); for p in "${need[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; fi
service nginx stop >/dev/null 2>&1 || true
service varnish stop >/dev/null 2>&1 || true
(cd "$repo" && cargo build --release --locked -q --bin murakumo --bin ceiling)

pids=()
cleanup() {
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    "$bin/murakumo" down --dir "$site" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
"$bin/murakumo" up --dir "$site" --port $port_up --ops-port $ops_up --detach >/dev/null
mkdir -p "$dir/run" "$dir/logs" "$dir/nginx-cache" "$dir/nginx-tmp" "$dir/varnish" "$dir/canned"
php_sock="$site/run/php-public/php.sock"

# One certificate for all: ECDSA P-256, what ACME CAs issue by default.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null

murakumo_toml() { # http-port tls-port ops-port
cat <<TOML
[server]
listen = ["127.0.0.1:$1"]
tls_listen = ["127.0.0.1:$2"]
ops_listen = "127.0.0.1:$3"
access_log = false
[[site]]
name = "bench"
hosts = ["localhost"]
root = "$site/wordpress"
php = ["unix:$php_sock"]
php_max_conns = 8
tls = { cert = "$dir/cert.pem", key = "$dir/key.pem" }
TOML
}
murakumo_toml $m_http $m_tls $m_ops > "$dir/murakumo.toml"

# listen-directive gzip cache(on|off) https(on|off)
nginx_server() {
    local cache=""
    if [ "$3" = on ]; then cache="
            fastcgi_cache wp;
            fastcgi_cache_key \$scheme\$http_host\$request_uri;
            fastcgi_cache_valid 200 301 10m;
            fastcgi_cache_bypass \$skip;
            fastcgi_no_cache \$skip;
            fastcgi_cache_lock on;
            add_header X-Cache \$upstream_cache_status;"; fi
cat <<CONF
    server {
        listen $1;
        server_name localhost;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
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
            fastcgi_param HTTPS $4;
            fastcgi_pass php;
            fastcgi_keep_conn on;$cache
        }
        location ~* \.(css|js|png|jpg|gif|svg|woff2?)\$ { expires 7d; }
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
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
$(nginx_server "127.0.0.1:$n_http reuseport" off on off)
$(nginx_server "127.0.0.1:$n_gzip reuseport" on on off)
$(nginx_server "127.0.0.1:$n_tls ssl http2 reuseport" off on on)
$(nginx_server "127.0.0.1:$n_back reuseport" off off off)
}
CONF

wordpress_vcl() { # gzip-once(true|false)
cat <<VCL
vcl 4.1;
backend nginx { .host = "127.0.0.1"; .port = "$n_back"; }
sub vcl_recv {
    if (req.method != "GET" && req.method != "HEAD") { return (pass); }
    if (req.url ~ "\?" || req.url ~ "^/wp-(admin|login)") { return (pass); }
    if (req.http.Cookie ~ "wordpress_logged_in|wordpress_sec|wp-postpass|comment_author") { return (pass); }
    unset req.http.Cookie;
    return (hash);
}
sub vcl_backend_response {
    if ($1 && beresp.http.Content-Type ~ "text/|javascript|json|xml|svg") { set beresp.do_gzip = true; }
    if (beresp.status == 200 || beresp.status == 301) { set beresp.ttl = 10m; }
}
sub vcl_deliver {
    if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
VCL
}
wordpress_vcl false > "$dir/wordpress.vcl"
wordpress_vcl true > "$dir/wordpress-gzip.vcl"

start() { "$@" & pids+=($!); }
start "$bin/murakumo" serve --config "$dir/murakumo.toml" 2> "$dir/logs/murakumo.log"; m_pid=$!
start nginx -c "$dir/nginx.conf" -g 'daemon off;'; n_pid=$!
varnish() { # port vcl name
    start varnishd -F -j none -n "$dir/varnish-$3" -a "127.0.0.1:$1" -f "$2" \
        -s malloc,256m >"$dir/logs/varnish-$3.log" 2>&1
    local pid=$!
    for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$1/" && break; sleep 0.2; done
    kill -0 $pid 2>/dev/null || { cat "$dir/logs/varnish-$3.log"; exit 1; }
}
varnish $v_http "$dir/wordpress.vcl" plain; v_pid=$!
varnish $v_gzip "$dir/wordpress-gzip.vcl" gzip; vg_pid=$!
sleep 1

browser_ae="Accept-Encoding: gzip, deflate, br, zstd"
asset="/wp-includes/js/jquery/jquery.min.js"
icon="/wp-includes/images/smilies/simple-smile.png"
warm() { for p in "$@"; do for _ in 1 2 3; do
    for path in / "$asset" "$icon"; do
        curl -s -o /dev/null -H "Host: $host" "http://127.0.0.1:$p$path"
        curl -s -o /dev/null -H "Host: $host" -H "$browser_ae" "http://127.0.0.1:$p$path"
    done
done; done; }
warm $m_http $n_http $n_gzip $v_http $v_gzip
for p in $m_tls $n_tls; do for _ in 1 2 3; do curl -sk -o /dev/null -H "Host: $host" "https://localhost:$p/"; done; done
check() { curl -s -o /dev/null -D - -H "Host: $host" "${@:2}" "http://127.0.0.1:$1/" | tr -d '\r' | grep -iE '^(x-cache|content-encoding)' | tr '\n' ' '; }
echo "murakumo: $(check $m_http)| browser AE: $(check $m_http -H "$browser_ae")| TLS h2: $(curl -sk -o /dev/null -D - --http2 -H "Host: $host" "https://localhost:$m_tls/" | tr -d '\r' | grep -iE '^(HTTP|x-cache)' | tr '\n' ' ')"
echo "nginx:    $(check $n_http)| gzip server, browser AE: $(check $n_gzip -H "$browser_ae")| TLS h2: $(curl -sk -o /dev/null -D - --http2 -H "Host: $host" "https://localhost:$n_tls/" | tr -d '\r' | grep -iE '^(HTTP|x-cache)' | tr '\n' ' ')"
echo "varnish:  $(check $v_http)| gzip-once instance, browser AE: $(check $v_gzip -H "$browser_ae")"

# The ceiling: murakumo's own answers, captured, served by bare hyper.
capture() { # name path [header]
    curl -s -D "$dir/canned/$1.head" -o "$dir/canned/$1.body" -H "Host: $host" ${3:+-H "$3"} "http://127.0.0.1:$m_http$2"
}
capture plain /; capture br / "$browser_ae"; capture js "$asset"; capture icon "$icon"
ceiling() { # name port [tls-port]
    start "$bin/ceiling" --listen "127.0.0.1:$2" --head "$dir/canned/$1.head" --body "$dir/canned/$1.body" \
        ${3:+--tls-listen "127.0.0.1:$3" --cert "$dir/cert.pem" --key "$dir/key.pem"}
}
ceiling plain $c_plain $c_tls; c_plain_pid=$!
ceiling br $c_br; c_br_pid=$!
ceiling js $c_js; c_js_pid=$!
ceiling icon $c_icon; c_icon_pid=$!
sleep 1
same_bytes() { # name port [header]
    curl -s -H "Host: $host" ${3:+-H "$3"} "http://127.0.0.1:$2/" | cmp -s - "$dir/canned/$1.body" && echo same || echo DIFFERENT
}
echo "ceiling: page $(wc -c < "$dir/canned/plain.body") B ($(same_bytes plain $c_plain)), br page $(wc -c < "$dir/canned/br.body") B ($(same_bytes br $c_br "$browser_ae")), js $(wc -c < "$dir/canned/js.body") B ($(same_bytes js $c_js)), icon $(wc -c < "$dir/canned/icon.body") B ($(same_bytes icon $c_icon)) as murakumo sent them"

# CPU ticks of a process and all its descendants.
tree_ticks() {
    local root=$1
    awk -v root="$root" '
        FNR == 1 { split($0, f, ") "); n = split(f[2], s, " "); pid = substr($1, 1); ppid[pid] = s[2]; t[pid] = s[12] + s[13] }
        END { for (p in t) { q = p; while (q != "" && q != root && q != 0 && q in ppid) q = ppid[q]; if (q == root) sum += t[p] }; print sum + 0 }
    ' /proc/[0-9]*/stat 2>/dev/null
}
cpu_us() { [ "${3:-0}" -gt 0 ] 2>/dev/null && echo "($2 - $1) * 1000000 / $(getconf CLK_TCK) / $3" | bc -l || echo 0; }
p99_ms() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'; }

# wrk_run PID URL [header] [connections] -> "rps p99ms cpu_us"
wrk_run() {
    local out t0 t1 reqs
    t0=$(tree_ticks "$1")
    out="$(wrk -t2 -c"${4:-$conns}" -d"${secs}s" --latency -H "Host: $host" ${3:+-H "$3"} "$2")"
    t1=$(tree_ticks "$1")
    awk '/Non-2xx|Socket errors/ {print "    (" u ": " $0 ")"}' u="$2" <<<"$out" >&2
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(p99_ms <<<"$out") $(cpu_us "$t0" "$t1" "$reqs")"
}
# h2_run PID PORT -> "rps mean_ms cpu_us"
h2_run() {
    local out t0 t1 reqs
    t0=$(tree_ticks "$1")
    out="$(h2load -D "$secs" -c 32 -m 16 -t 2 -H ":authority: $host" "https://localhost:$2/" 2>&1)"
    t1=$(tree_ticks "$1")
    awk '/^requests:/ && $10 + $12 + $14 > 0 {print "    (" $0 ")"}' <<<"$out" >&2
    reqs="$(awk '/^status codes:/ {print $3}' <<<"$out")"
    echo "$(awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) {gsub(/,/, "", $(i-1)); print $(i-1)}}' <<<"$out") \
$(awk '/^time for request:/ {v=$5; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)}; print v}' <<<"$out") \
$(cpu_us "$t0" "$t1" "$reqs")"
}
median() { sort -n -k1 | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

# Each workload: "label|pid|command args" per server, in turn, round after
# round (the order rotates), so machine noise hits all alike.
declare -A result
workload() { # name, then "server|pid|kind|target|header" entries
    local name=$1; shift
    local entries=("$@") n=${#entries[@]} r i
    declare -A rows=()
    echo "== $name"
    for ((r = 0; r < rounds; r++)); do
        for ((i = 0; i < n; i++)); do
            IFS='|' read -r server pid kind target hdr <<<"${entries[$(((i + r) % n))]}"
            local got
            if [ "$kind" = h2 ]; then got="$(h2_run "$pid" "$target")"; else got="$(wrk_run "$pid" "$target" "$hdr")"; fi
            rows[$server]+="$got"$'\n'
            printf "   round %d %-9s %s\n" $((r + 1)) "$server" "$got"
        done
    done
    for server in "${!rows[@]}"; do
        result["$name|$server"]="$(printf '%s' "${rows[$server]}" | median)"
    done
}

u() { echo "http://127.0.0.1:$1$2"; }
workload "cached page, plain" \
    "murakumo|$m_pid|h1|$(u $m_http /)|" "nginx|$n_pid|h1|$(u $n_http /)|" \
    "varnish|$v_pid|h1|$(u $v_http /)|" "ceiling|$c_plain_pid|h1|$(u $c_plain /)|"
workload "cached page, browser Accept-Encoding" \
    "murakumo|$m_pid|h1|$(u $m_http /)|$browser_ae" "nginx|$n_pid|h1|$(u $n_gzip /)|$browser_ae" \
    "varnish|$vg_pid|h1|$(u $v_gzip /)|$browser_ae" "ceiling|$c_br_pid|h1|$(u $c_br /)|$browser_ae"
workload "cached page, h2 + TLS" \
    "murakumo|$m_pid|h2|$m_tls|" "nginx|$n_pid|h2|$n_tls|" "ceiling|$c_plain_pid|h2|$c_tls|"
workload "static $(basename $asset) (87 KB)" \
    "murakumo|$m_pid|h1|$(u $m_http "$asset")|" "nginx|$n_pid|h1|$(u $n_http "$asset")|" \
    "varnish|$v_pid|h1|$(u $v_http "$asset")|" "ceiling|$c_js_pid|h1|$(u $c_js /)|"
workload "static $(basename $icon) (1 KB)" \
    "murakumo|$m_pid|h1|$(u $m_http "$icon")|" "nginx|$n_pid|h1|$(u $n_http "$icon")|" \
    "varnish|$v_pid|h1|$(u $v_http "$icon")|" "ceiling|$c_icon_pid|h1|$(u $c_icon /)|"

# murakumo against the ceiling in pairs of short runs back to back (order
# flipped each pair): on this machine requests/s move by a quarter between
# runs half a minute apart, so the rounds above can put a fast minute on
# one side; a pair's two runs share theirs. PAIRS pairs of 5 s runs.
paired() { # name murakumo-url ceiling-pid ceiling-url [header]
    local name=$1 m_url=$2 c_pid=$3 c_url=$4 hdr=${5:-} k m c
    echo "== murakumo ÷ ceiling in pairs, $name (5 s runs): m/c req/s, c/m CPU"
    local ratios=""
    for ((k = 0; k < ${PAIRS:-8}; k++)); do
        if ((k % 2 == 0)); then
            m="$(secs=5 wrk_run "$m_pid" "$m_url" "$hdr")"; c="$(secs=5 wrk_run "$c_pid" "$c_url" "$hdr")"
        else
            c="$(secs=5 wrk_run "$c_pid" "$c_url" "$hdr")"; m="$(secs=5 wrk_run "$m_pid" "$m_url" "$hdr")"
        fi
        local r; r="$(awk -v m="$m" -v c="$c" 'BEGIN {split(m, a, " "); split(c, b, " "); printf "%.2f %.2f", a[1] / b[1], (a[3] > 0 ? b[3] / a[3] : 0)}')"
        printf "   pair %d: %s\n" $((k + 1)) "$r"
        ratios+="$r"$'\n'
    done
    printf "   median: %s req/s, %s CPU\n" \
        "$(printf '%s' "$ratios" | awk '{print $1}' | median)" "$(printf '%s' "$ratios" | awk '{print $2}' | median)"
}
paired "cached page, plain" "$(u $m_http /)" "$c_plain_pid" "$(u $c_plain /)"
paired "browser Accept-Encoding" "$(u $m_http /)" "$c_br_pid" "$(u $c_br /)" "$browser_ae"

# Uncached pages: php-fpm's 8 workers are the limit (more connections only
# queue). wrk stops by dropping its in-flight requests, which aborts them
# in PHP: refill with requests that finish before each run. ABBA order.
uncached_run() { # server pid port
    local urls=(); for i in $(seq 16); do urls+=(-o /dev/null "http://127.0.0.1:$3/?bench=refill$i"); done
    conns=8 secs=3 wrk_run "$2" "$(u "$3" '/?bench=warmup')" "" 8 >/dev/null
    curl -s --parallel --parallel-max 8 -H "Host: $host" "${urls[@]}" 2>/dev/null
    local got; got="$(secs=$((secs < 20 ? 20 : secs)) wrk_run "$2" "$(u "$3" '/?bench=uncached')" "" 8)"
    printf "   %-9s %s\n" "$1" "$got" >&2
    echo "$got"
}
echo "== uncached PHP page (-c8, ABBA)"
declare -A un=()
for who in murakumo nginx varnish varnish nginx murakumo; do
    case $who in
        murakumo) un[$who]+="$(uncached_run murakumo $m_pid $m_http)"$'\n' ;;
        nginx) un[$who]+="$(uncached_run nginx $n_pid $n_http)"$'\n' ;;
        varnish) un[$who]+="$(uncached_run varnish $v_pid $v_http)"$'\n' ;;
    esac
done
for who in murakumo nginx varnish; do
    result["uncached PHP page|$who"]="$(printf '%s' "${un[$who]}" | awk 'NF {r+=$1; p+=$2; c+=$3; n++} END {printf "%.2f %.2f %.2f\n", r/n, p/n, c/n}')"
done

# The table: requests/s, p99 (h2: mean) and CPU µs per request for each
# server; murakumo's ratios against each other server, in requests/s and in
# CPU per request (other's CPU / murakumo's: above 1 means murakumo is cheaper).
printf "\n%-40s %-9s %10s %9s %8s %10s %10s\n" workload server "req/s" "p99 ms" "cpu µs" "m/x req/s" "x/m cpu"
for name in "cached page, plain" "cached page, browser Accept-Encoding" "cached page, h2 + TLS" \
    "static $(basename $asset) (87 KB)" "static $(basename $icon) (1 KB)" "uncached PHP page"; do
    read -r mr _ mc <<<"${result["$name|murakumo"]}"
    shown="$name"
    for server in murakumo ceiling nginx varnish; do
        [ -n "${result["$name|$server"]:-}" ] || continue
        read -r r p c <<<"${result["$name|$server"]}"
        if [ $server = murakumo ]; then ratio="" cpu=""; else
            ratio="$(printf '%.2fx' "$(echo "$mr / $r" | bc -l)")"; cpu="$(printf '%.2fx' "$(echo "$c / $mc" | bc -l)")"; fi
        printf "%-40s %-9s %10.0f %9.2f %8.1f %10s %10s\n" "$shown" "$server" "$r" "$p" "$c" "$ratio" "$cpu"
        shown=""
    done
done

# What the page cache holds per stored entry beyond its bodies: a fresh edge
# stores N different pages (404s of the theme, the size of a page); its
# resident memory grows by N entries, bodies (identity, gzip, br) included.
kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
start "$bin/murakumo" serve --config "$dir/murakumo.toml" 2>> "$dir/logs/murakumo.log"; mem_pid=$!
sleep 1
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
metric() { curl -s "http://127.0.0.1:$m_ops/metrics" | awk -v n="$1" '$1 ~ "^"n {s+=$2} END {print s+0}'; }
entries=1000
fill() { # from to
    local urls=(); for i in $(seq "$1" "$2"); do urls+=(-o /dev/null "http://127.0.0.1:$m_http/bench-memory-$i/"); done
    curl -s --no-progress-meter --parallel --parallel-max 8 -H "Host: $host" "${urls[@]}" 2>/dev/null
}
# A first hundred sets up what every fill uses (threads, their arenas).
fill 10001 10100
sleep 1
rss0=$(rss_kb $mem_pid); stored0=$(metric murakumo_cache_entries)
fill 1 $entries
sleep 1
rss1=$(rss_kb $mem_pid)
stored=$(metric murakumo_cache_entries); bytes=$(metric murakumo_cache_bytes)
added=$(( ${stored%.*} - ${stored0%.*} ))
bodies=0
for enc in "" "Accept-Encoding: gzip" "Accept-Encoding: br"; do
    n=$(curl -s -H "Host: $host" ${enc:+-H "$enc"} "http://127.0.0.1:$m_http/bench-memory-1/" | wc -c)
    bodies=$((bodies + n))
done
echo
echo "page cache memory: $added entries added to $stored0; bodies $bodies bytes per entry (identity + gzip + br);"
echo "  resident memory grew $(( (rss1 - rss0) * 1024 / added )) bytes per entry: $(( (rss1 - rss0) * 1024 / added - bodies )) beyond the bodies;"
echo "  the cache's own weight: $(( ${bytes%.*} / ${stored%.*} )) bytes per entry ($(( ${bytes%.*} / ${stored%.*} - bodies )) beyond the bodies: headers, ready heads, tags, bookkeeping)"
echo
echo "machine: $(nproc) cores; wrk -t2 -c$conns -d${secs}s (h2load -t2 -c32 -m16 -D$secs); $rounds rounds, rotating order, medians; uncached: -c8, 20 s, ABBA means"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(varnishd -V 2>&1 | grep -o 'varnish-[0-9.]*' | head -1), $(openssl version | cut -d' ' -f1-2); $(date -u +%Y-%m-%dT%H:%MZ)"
