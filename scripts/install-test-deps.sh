#!/usr/bin/env bash
# install-test-deps.sh — installs what the test suite drives: Debian's gearmand (the reference server)
# and the third-party Gearman clients (libgearman's gearman/gearadmin, PHP's pecl gearman, Perl's
# Gearman::Client, with IO::Socket::SSL for its TLS connections), openssl (s_client against the TLS
# port), Chromium for the dashboard's browser tests (httpapi/dashboard_test.go), and PostgreSQL for the
# postgres store's tests (internal/testpg runs a throwaway cluster of its own as nobody; the packaged
# cluster is not started).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
PKGS="gearman-tools gearman-job-server php-cli php-gearman libgearman-client-perl libio-socket-ssl-perl openssl bsdextrautils curl chromium postgresql"
need=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"; done
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing test dependencies:$need" >&2
# Keep the packaged services (gearmand on 4730, PostgreSQL's main cluster) from starting during the install.
added_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  added_policy=1
fi
trap '[ $added_policy = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
