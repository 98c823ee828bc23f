#!/usr/bin/env bash
# Makes sure the services the test suite needs are up: PostgreSQL (127.0.0.1:5432, trust auth,
# database `test`) and Redis (127.0.0.1:6379). Starts them when they are not; fails loudly when
# it cannot. Kafka is not here: the test suite starts the real tansu broker itself.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
wait_for() { for _ in $(seq 1 30); do "$1" && return 0; sleep 1; done; return 1; }

if ! pg_up; then
  echo "PostgreSQL is not up on 127.0.0.1:5432: starting it"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  wait_for pg_up || { echo "ERROR: PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started" >&2; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'create database test' >/dev/null \
    || { echo "ERROR: PostgreSQL database 'test' is missing and could not be created" >&2; exit 1; }
fi

if ! redis_up; then
  echo "Redis is not up on 127.0.0.1:6379: starting it"
  command -v redis-server >/dev/null \
    && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_for redis_up || { echo "ERROR: Redis is not reachable on 127.0.0.1:6379 and could not be started" >&2; exit 1; }
fi
echo "test services: PostgreSQL and Redis are up"
