#!/usr/bin/env bash
# Make sure MariaDB and Redis answer on 127.0.0.1, installing them (Debian) when absent and
# starting them when stopped. Used by `make test` and so by .ci/run.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # name, command
  for _ in $(seq 1 60); do
    if eval "$2" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "ensure-services: $1 did not come up" >&2
  return 1
}

if ! mysqladmin -h127.0.0.1 -uroot ping >/dev/null 2>&1; then
  if [ ! -x /usr/sbin/mariadbd ]; then
    echo "ensure-services: installing mariadb-server"
    apt_install mariadb-server
  fi
  echo "ensure-services: starting MariaDB"
  as_root mkdir -p /run/mysqld && as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB "mysqladmin -h127.0.0.1 -uroot ping"
fi
mysql -h127.0.0.1 -uroot -e "CREATE DATABASE IF NOT EXISTS test" >/dev/null

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-services: installing redis-server"
    apt_install redis-server
  fi
  echo "ensure-services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_for Redis "redis-cli -h 127.0.0.1 -p 6379 ping"
fi

if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-services: installing chromium for the browser tests"
  apt_install chromium || echo "ensure-services: chromium could not be installed; browser tests will be skipped"
fi
echo "ensure-services: MariaDB and Redis are up"
