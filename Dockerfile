# A Debian 12 image with nginx and the module installed from its Debian
# package, as on a server: the first stage builds the package (make deb,
# lintian included), the second installs it with apt-get, as a user would.
# `docker run -p 8080:8080 -p 9000:9000 IMAGE` starts the demo (Redis, the
# demo IdP, nginx with the packaged module, the app): docs/debian.md.

# ---- build: libnginx-mod-http-identity_*.deb from debian/
FROM debian:bookworm AS build

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
        make dpkg-dev debhelper lintian

WORKDIR /src
COPY . /src

# the Build-Depends of debian/control, then dpkg-buildpackage and lintian
RUN apt-get build-dep -y -q --no-install-recommends ./ && make deb

# ---- run: the package installed, nginx (its Recommends) with it
FROM debian:bookworm

ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /src/build/deb/libnginx-mod-http-identity_*_*.deb /tmp/deb/
RUN apt-get update -q \
    && apt-get install -y -q /tmp/deb/libnginx-mod-http-identity_*.deb \
    && apt-get install -y -q --no-install-recommends \
        redis-server nodejs npm curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* /tmp/deb

# the demo: its script and nginx.conf, and the test IdP with its npm
# packages (pinned by t/node/package-lock.json)
WORKDIR /src
COPY scripts/demo.sh scripts/demo.conf scripts/
COPY scripts/demo-geo/package.json scripts/demo-geo/package-lock.json \
     scripts/demo-geo/
COPY t/idp t/idp
COPY t/node/package.json t/node/package-lock.json t/node/
RUN cd t/node && npm ci --no-audit --no-fund --loglevel=error

ENV DEMO_LISTEN=0.0.0.0
ENV DEMO_MODULE=/usr/lib/nginx/modules/ngx_http_identity_module.so
EXPOSE 8080 9000
CMD ["sh", "scripts/demo.sh"]
