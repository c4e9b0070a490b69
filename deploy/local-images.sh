#!/usr/bin/env bash
# Builds the compose topology's base images from Debian packages, for a machine that has a
# Docker engine but no container registry (an air-gapped build host, or the project's machines):
#   oi-cds-local/python:bookworm    Debian's python3 + venv   (stands in for python:3.11-slim)
#   oi-cds-local/postgres:bookworm  PostgreSQL 15             (for postgres:16-alpine)
#   oi-cds-local/redis:bookworm     Redis 7                   (for redis:7-alpine)
#   oi-cds-local/nginx:bookworm     nginx                     (for nginx:1.27-alpine)
# and the project's wheels in deploy/wheels/ (built here, on the host), so the service image
# installs with `pip --no-index`. Images that already exist are reused (FORCE=1 rebuilds).
# Writes deploy/local-images.env for `docker-compose --env-file`. Needs root, debootstrap
# and a Debian mirror (MIRROR, default the host's deb.debian.org).
set -euo pipefail
cd "$(dirname "$0")/.."

MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
WORK=${OI_CDS_IMAGE_WORK:-/var/tmp/oi-cds-images}
PYTHON=${PYTHON:-python3}
FORCE=${FORCE:-0}
TAG=$SUITE

log() { printf '[local-images] %s\n' "$*" >&2; }
have_image() { [ "$FORCE" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || { log "run as root (debootstrap and chroot need it)"; exit 1; }
command -v docker >/dev/null || { log "no docker client"; exit 1; }
docker info >/dev/null 2>&1 || { log "the Docker engine is not running (start dockerd)"; exit 1; }

# A root file system in a chroot: services must not start while their packages install.
rootfs() {
    local dir=$1
    shift
    if [ ! -e "$WORK/minbase.tar" ] || [ "$FORCE" = 1 ]; then
        command -v debootstrap >/dev/null || { log "install debootstrap (apt-get install debootstrap)"; exit 1; }
        log "debootstrap $SUITE (minbase) from $MIRROR"
        rm -rf "$WORK/minbase" && mkdir -p "$WORK/minbase"
        debootstrap --variant=minbase "$SUITE" "$WORK/minbase" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
        tar -C "$WORK/minbase" -cf "$WORK/minbase.tar" .
        rm -rf "$WORK/minbase"
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    tar -C "$dir" -xf "$WORK/minbase.tar"
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod +x "$dir/usr/sbin/policy-rc.d"
    # PostgreSQL's package makes a cluster on install unless told not to; the image makes its own.
    mkdir -p "$dir/etc/postgresql-common"
    echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.conf"
    mount -t proc proc "$dir/proc"
    MOUNTED="$dir/proc"
    chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get -qq update
    chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive \
        apt-get -qq install -y --no-install-recommends "$@" >"$dir.apt.log" 2>&1 \
        || { tail -20 "$dir.apt.log" >&2; exit 1; }
    chroot "$dir" apt-get clean
    umount "$dir/proc" && MOUNTED=
    rm -rf "$dir/var/lib/apt/lists/"* "$dir/usr/sbin/policy-rc.d"
}

import_base() {
    local name=$1
    shift
    if have_image "$name"; then
        log "$name: present, reused"
        return
    fi
    log "$name: packages $*"
    rootfs "$WORK/${name//[\/:]/_}" "$@"
    tar -C "$WORK/${name//[\/:]/_}" -c . | docker import - "$name" >/dev/null
    rm -rf "$WORK/${name//[\/:]/_}"
}

build_standin() {
    local name=$1 dir=$2
    if have_image "$name"; then
        log "$name: present, reused"
        return
    fi
    log "$name: docker build $dir"
    DOCKER_BUILDKIT=0 docker build -q --build-arg BASE="oi-cds-local/debian-infra:$TAG" -t "$name" "$dir" >/dev/null
}

MOUNTED=
trap '[ -z "$MOUNTED" ] || umount "$MOUNTED" 2>/dev/null || true' EXIT
mkdir -p "$WORK"
import_base "oi-cds-local/python:$TAG" python3 python3-venv ca-certificates
import_base "oi-cds-local/debian-infra:$TAG" postgresql redis-server nginx-light wget ca-certificates
build_standin "oi-cds-local/postgres:$TAG" deploy/local-images/postgres
build_standin "oi-cds-local/redis:$TAG" deploy/local-images/redis
build_standin "oi-cds-local/nginx:$TAG" deploy/local-images/nginx

# The project and every dependency as wheels, built on the host by the base image's own Python
# (a throwaway container on the host's network, with the host's CA bundle): the host's Python
# may differ in ways markers see (redis needs async-timeout below Python 3.11.3), so wheels
# resolved by another interpreter can miss a dependency. The image itself has no network.
log "wheels for the project into deploy/wheels/"
find deploy/wheels -name '*.whl' -delete 2>/dev/null || true
CA=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
docker run --rm --network host \
    -v "$CA:/etc/ssl/certs/ca-certificates.crt:ro" -e PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    -e PIP_INDEX_URL="${PIP_INDEX_URL:-https://pypi.org/simple}" -e PIP_DEFAULT_TIMEOUT=120 \
    -v "$PWD:/src:ro" -v "$PWD/deploy/wheels:/out" "oi-cds-local/python:$TAG" sh -c '
        set -e
        python3 -m venv /tmp/venv
        mkdir /tmp/project
        cp -r /src/pyproject.toml /src/README.md /src/services /src/fhir_profiles /tmp/project/
        /tmp/venv/bin/pip wheel --quiet --disable-pip-version-check --wheel-dir /out /tmp/project
    ' >"$WORK/wheels.log" 2>&1 || { tail -20 "$WORK/wheels.log" >&2; exit 1; }

cat >deploy/local-images.env <<ENV
# Written by deploy/local-images.sh: the compose topology on the local Debian-built images.
OI_CDS_BASE_IMAGE=oi-cds-local/python:$TAG
OI_CDS_WHEELS=local
OI_CDS_POSTGRES_IMAGE=oi-cds-local/postgres:$TAG
OI_CDS_REDIS_IMAGE=oi-cds-local/redis:$TAG
OI_CDS_NGINX_IMAGE=oi-cds-local/nginx:$TAG
ENV
log "done: docker-compose --env-file deploy/local-images.env up -d"
