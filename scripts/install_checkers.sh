#!/usr/bin/env bash
# Install Debian's HAProxy for the compose tests (tests/unit/api/test_compose.py), if missing:
# they check deploy/haproxy.cfg with `haproxy -c` and run it against stub Qdrant nodes.
# Idempotent and quiet: does nothing when haproxy is there. Without it those tests skip.
# Only the binary is wanted: a service the package may start is stopped and disabled.
set -euo pipefail

if command -v haproxy >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_checkers.sh: no apt-get here; install haproxy yourself (the balancer tests skip without it)" >&2
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "install_checkers.sh: need root (or sudo) to apt-get install haproxy; the balancer tests will skip" >&2
        exit 0
    fi
fi
echo "installing haproxy (Debian package) for the compose balancer tests..."
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq haproxy >/dev/null
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    $sudo systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
if command -v haproxy >/dev/null 2>&1; then haproxy -v | sed -n 1p; else echo "haproxy installed in /usr/sbin, which is not on this PATH"; fi
