#!/usr/bin/env bash
# Lighthouse (npm's, with Debian's chromium) on a site made by `murakumo up`:
# the performance score and the text-compression and caching audits of the
# home page and a post, and the bytes compression saves on the assets those
# pages load. A script, not a test: Lighthouse needs a minute.
#
# Usage: bench/lighthouse.sh [murakumo binary, default target/release/murakumo]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(realpath "${1:-$repo/target/release/murakumo}")"
tools=/opt/murakumo-bench-tools
port=18680; ops=18690
dir="$(mktemp -d /tmp/murakumo-lighthouse.XXXXXX)"
chmod 755 "$dir"

"$repo/scripts/install-deps" --test
if [ ! -x "$tools/node_modules/.bin/lighthouse" ]; then
    command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
    mkdir -p "$tools" && (cd "$tools" && npm install --silent --no-audit --no-fund lighthouse@12 >/dev/null)
fi
trap '"$bin" down --dir "$dir/site" >/dev/null 2>&1; rm -rf "$dir"' EXIT
"$bin" up --dir "$dir/site" --port $port --ops-port $ops --detach >/dev/null
url="http://localhost:$port"
post="$(curl -s "$url/wp-json/wp/v2/posts?per_page=1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["link"])')"

for page in "$url/" "$post"; do
    curl -s -o /dev/null "$page"   # warm the cache, as a visitor before would have
    CHROME_PATH=/usr/bin/chromium "$tools/node_modules/.bin/lighthouse" "$page" --quiet \
        --chrome-flags="--headless=new --no-sandbox" --only-categories=performance \
        --output=json --output-path="$dir/report.json" >/dev/null 2>&1
    /usr/bin/python3 - "$dir/report.json" "$page" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["audits"]
print(f"{sys.argv[2]}: performance {r['categories']['performance']['score']:.2f}", end="")
for k in ("uses-text-compression", "uses-long-cache-ttl", "total-byte-weight", "server-response-time"):
    x = a.get(k, {})
    print(f"; {k} {x.get('score')} {x.get('displayValue', '')}".rstrip(), end="")
print()
PY
done

/usr/bin/python3 - "$url" "$post" <<'PY'
import re, sys, urllib.request
base, post = sys.argv[1], sys.argv[2]
def get(url, ae=None):
    h = {"User-Agent": "bench"}
    if ae:
        h["Accept-Encoding"] = ae
    with urllib.request.urlopen(urllib.request.Request(url, headers=h)) as r:
        return len(r.read())
assets = set()
for page in (base + "/", post):
    html = urllib.request.urlopen(page).read().decode()
    assets |= set(re.findall(r'(?:href|src)=["\'](' + re.escape(base) + r'/[^"\'#]*\.(?:css|js)(?:\?[^"\']*)?)["\']', html))
plain = sum(get(u) for u in assets)
get(next(iter(assets)), "br")  # the compressed forms are made once, off the request path
import time; time.sleep(1)
br = sum(get(u, "br, gzip") for u in assets)
print(f"assets of both pages: {len(assets)} files, {plain} bytes plain, {br} compressed: {plain - br} saved ({100 * (plain - br) / max(plain, 1):.0f}%)")
PY
