# A Debian 12 image with nginx and the module, built by the same install
# script and build as on a developer's machine.  `docker run -p 8080:8080
# -p 9000:9000 IMAGE` starts the demo (Redis, the demo IdP, nginx, the app).
FROM debian:bookworm

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src

RUN sh scripts/install-deps.sh && make module

ENV DEMO_LISTEN=0.0.0.0
EXPOSE 8080 9000
CMD ["make", "demo"]
