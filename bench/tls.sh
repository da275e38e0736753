#!/usr/bin/env bash
# HTTPS: murakumo (rustls, aws-lc-rs) vs nginx (OpenSSL), side by side, one
# run, same machine, same ECDSA P-256 certificate, same cached WordPress page
# (the public php-fpm pool of a `murakumo up` site fills both caches).
#
#   h2, cached page     h2load: 32 clients x 16 concurrent streams, plain body
#   new TLS handshakes  wrk with "Connection: close": a full handshake (no
#                       resumption) and one small static file per connection
#   h1 over TLS         wrk keep-alive, cached page
#
# nginx: 2 workers, http2, ssl_session_cache, fastcgi_cache with keepalive
# to php-fpm, access_log off: as it should be run.
#
# Usage: bench/tls.sh [seconds per run, default 10]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-10}"
dir="$(mktemp -d /tmp/murakumo-bench-tls.XXXXXX)"
chmod 755 "$dir"   # the stack's accounts must reach it
port_up=18579; ops_up=18589; port_m=18580; tls_m=18543; tls_n=18544; ops=18590
host="localhost:$port_up"   # WordPress' home; both servers get this authority
site="$dir/site"

"$repo/scripts/install-deps" --test
missing=(); for p in nginx-light wrk; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; fi
service nginx stop >/dev/null 2>&1 || true
(cd "$repo" && cargo build --release --locked -q)

trap '"$repo/target/release/murakumo" down --dir "$site" >/dev/null; rm -rf "$dir"' EXIT
"$repo/target/release/murakumo" up --dir "$site" --port $port_up --ops-port $ops_up --detach >/dev/null
mkdir -p "$dir/run" "$dir/logs" "$dir/nginx-cache" "$dir/nginx-tmp"
php_sock="$site/run/php-public/php.sock"

# One certificate for both: ECDSA P-256, what ACME CAs issue by default.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null

cat > "$dir/murakumo.toml" <<TOML
[server]
listen = ["127.0.0.1:$port_m"]
tls_listen = ["127.0.0.1:$tls_m"]
ops_listen = "127.0.0.1:$ops"
access_log = false
[[site]]
name = "bench"
hosts = ["localhost"]
root = "$site/wordpress"
php = ["unix:$php_sock"]
php_max_conns = 8
tls = { cert = "$dir/cert.pem", key = "$dir/key.pem" }
TOML

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
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    client_body_temp_path $dir/nginx-tmp;
    fastcgi_temp_path $dir/nginx-tmp;
    fastcgi_cache_path $dir/nginx-cache levels=1:2 keys_zone=wp:64m max_size=256m inactive=1h;
    upstream php { server unix:$php_sock; keepalive 8; }
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    server {
        listen 127.0.0.1:$tls_n ssl http2 reuseport;
        server_name localhost;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        root $site/wordpress;
        index index.php;
        location / { try_files \$uri \$uri/ /index.php?\$args; }
        location ~ \.php\$ {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_param HTTP_HOST \$http_host;
            fastcgi_param HTTPS on;
            fastcgi_pass php;
            fastcgi_keep_conn on;
            fastcgi_cache wp;
            fastcgi_cache_key \$scheme\$http_host\$request_uri;
            fastcgi_cache_valid 200 301 10m;
            fastcgi_cache_lock on;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
CONF

"$repo/target/release/murakumo" serve --config "$dir/murakumo.toml" 2> "$dir/logs/murakumo.log" &
m_pid=$!
nginx -c "$dir/nginx.conf" -g 'daemon off;' &
n_pid=$!
sleep 1
asset="/wp-includes/images/blank.gif"
for p in $tls_m $tls_n; do for _ in 1 2 3; do
    curl -sk -o /dev/null -H "Host: $host" "https://localhost:$p/"
done
echo "port $p: $(curl -sk -o /dev/null -D - --http2 -H "Host: $host" "https://localhost:$p/" | tr -d '\r' | grep -iE '^(HTTP|x-cache)' | tr '\n' ' ')"
done

h2() { # port -> req/s
    h2load -D "$secs" -c 32 -m 16 -t 2 -H ":authority: $host" "https://localhost:$1/" 2>&1 |
        awk '/^finished in/ {for (i = 1; i <= NF; i++) if ($i ~ /req\/s/) {gsub(/,/, "", $(i-1)); print $(i-1)}}
             /^requests:/ && $10 + $12 + $14 > 0 {print "  (" $0 ")" > "/dev/stderr"}'
}
wrk_rps() { # port path [header] -> req/s
    local out
    out="$(wrk -t2 -c32 -d"${secs}s" -H "Host: $host" ${3:+-H "$3"} "https://localhost:$1$2")"
    awk '/Non-2xx|Socket errors/ {print "  (" $0 ")" > "/dev/stderr"}' <<<"$out"
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}
median() { sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}'; }

names=("h2 cached page (h2load -c32 -m16)" "new TLS handshakes/s (wrk, Connection: close)" "h1 over TLS cached page (wrk -c32)")
m=(); n=()
for i in 0 1 2; do
    mr=(); nr=()
    for _ in 1 2 3; do   # alternate, so machine noise hits both alike
        case $i in
            0) mr+=("$(h2 $tls_m)"); nr+=("$(h2 $tls_n)") ;;
            1) mr+=("$(wrk_rps $tls_m $asset 'Connection: close')"); nr+=("$(wrk_rps $tls_n $asset 'Connection: close')") ;;
            2) mr+=("$(wrk_rps $tls_m /)"); nr+=("$(wrk_rps $tls_n /)") ;;
        esac
    done
    m[$i]="$(printf '%s\n' "${mr[@]}" | median)"
    n[$i]="$(printf '%s\n' "${nr[@]}" | median)"
done
kill -TERM $n_pid $m_pid; wait $n_pid $m_pid 2>/dev/null || true

printf "\n%-48s %14s %14s %8s\n" workload "murakumo r/s" "nginx r/s" ratio
for i in 0 1 2; do
    printf "%-48s %14.0f %14.0f %7.2fx\n" "${names[$i]}" "${m[$i]}" "${n[$i]}" "$(echo "${m[$i]} / ${n[$i]}" | bc -l)"
done
echo "machine: $(nproc) cores; ${secs}s per run, median of 3 alternating runs; nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(openssl version | cut -d' ' -f1-2); $(date -u +%Y-%m-%dT%H:%MZ)"
