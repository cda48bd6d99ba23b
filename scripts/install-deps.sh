#!/bin/sh
# Installs everything the build, the demo and the tests need, from Debian's
# packages and (for the test identity providers and the browser driver) the
# npm registry, pinned by t/node/package-lock.json.  Running it again is quick
# and changes nothing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

debs="
build-essential pkg-config nginx nginx-dev
libhiredis-dev liboauth2-dev libcjose-dev libjansson-dev libssl-dev
libcurl4-openssl-dev liblasso3-dev libmaxminddb-dev libyaml-dev libpcre2-dev
libcmocka-dev
redis-server redis-sentinel
perl libjson-pp-perl libmaxmind-db-writer-perl python3-prometheus-client
simplesamlphp php-cli php-xml php-mbstring xmlsec1 libxml-libxml-perl
uap-core
wrk curl ca-certificates openssl
chromium
"

missing=""
for p in $debs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q 'install ok installed'
    then
        missing="$missing $p"
    fi
done

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        SUDO=sudo
    else
        SUDO=
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q
    # Debian starts services on install; the tests and the demo run their own
    # instances on free loopback ports, so keep the packaged ones from
    # starting.
    printf '#!/bin/sh\nexit 101\n' > /tmp/identity-policy-rc.d
    chmod +x /tmp/identity-policy-rc.d
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        $SUDO cp /tmp/identity-policy-rc.d /usr/sbin/policy-rc.d
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $SUDO apt-get install -y -q --no-install-recommends $missing
fi

# npm packages: oidc-provider (8.x runs on Debian's Node 18 and on newer
# ones) and playwright-core, pinned by the lockfile.
cd "$top/t/node"
if [ ! -d node_modules ] \
   || ! cmp -s package-lock.json node_modules/.package-lock.json.installed
then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.package-lock.json.installed
fi

# npm packages of the world map's generator (scripts/build-world-map.mjs),
# pinned by scripts/map/package-lock.json: t/99 regenerates dashboard/world.js
# with them and compares it with the committed file.
cd "$top/scripts/map"
if [ ! -d node_modules ] \
   || ! cmp -s package-lock.json node_modules/.package-lock.json.installed
then
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.package-lock.json.installed
fi
