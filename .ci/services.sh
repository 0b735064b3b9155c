#!/usr/bin/env bash
# Installs and starts what the distributed and browser tests need: a PostgreSQL server on
# 127.0.0.1 (database/user/password "evoprune") and Debian's Chromium. Source it: it exports
# EVOPRUNE_TEST_POSTGRES_URL when the server is up. Under CI=true a service that cannot be
# installed or started fails here (status 1), and the tests that need it fail too; elsewhere
# a missing service only makes those tests skip, with the reason shown.
set -u

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium \
    >/dev/null 2>&1 || echo "services: apt-get install postgresql chromium failed" >&2
fi

if command -v pg_lsclusters >/dev/null 2>&1; then
  cluster=$(pg_lsclusters -h 2>/dev/null | head -n 1)
  if [ -n "$cluster" ]; then
    ver=$(echo "$cluster" | awk '{print $1}')
    name=$(echo "$cluster" | awk '{print $2}')
    port=$(echo "$cluster" | awk '{print $3}')
    as_root pg_ctlcluster "$ver" "$name" start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do
      as_root su postgres -c "pg_isready -q -h 127.0.0.1 -p $port" && break
      sleep 1
    done
    as_root su postgres -c "psql -q -p $port -c \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'evoprune') THEN CREATE ROLE evoprune LOGIN PASSWORD 'evoprune'; END IF; END \\\$\\\$;\"" >/dev/null 2>&1
    as_root su postgres -c "createdb -p $port -O evoprune evoprune" >/dev/null 2>&1 || true
    if as_root su postgres -c "pg_isready -q -h 127.0.0.1 -p $port"; then
      export EVOPRUNE_TEST_POSTGRES_URL="postgresql://evoprune:evoprune@127.0.0.1:$port/evoprune"
      echo "services: PostgreSQL $ver on 127.0.0.1:$port"
    fi
  fi
fi
command -v chromium >/dev/null 2>&1 && echo "services: $(chromium --version 2>/dev/null)"

if [ "${CI:-}" = "true" ]; then
  missing=""
  [ -n "${EVOPRUNE_TEST_POSTGRES_URL:-}" ] || missing="$missing PostgreSQL"
  command -v chromium >/dev/null 2>&1 || missing="$missing Chromium"
  if [ -n "$missing" ]; then
    echo "services: CI=true but not installed or not started:$missing" >&2
    return 1 2>/dev/null || exit 1
  fi
fi
true
