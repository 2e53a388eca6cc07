#!/usr/bin/env bash
# Install Debian's Chromium and ChromeDriver for the browser tests (tests/browser), if missing.
# Idempotent and quiet: does nothing when both are there. Playwright drives this Chromium
# (executable /usr/bin/chromium) because `playwright install` downloads browsers from a host
# our machines cannot reach.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install Chromium yourself (the browser tests skip without /usr/bin/chromium)" >&2
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "install_browser.sh: need root (or sudo) to apt-get install chromium; the browser tests will skip" >&2
        exit 0
    fi
fi
echo "installing chromium and chromium-driver (Debian packages) for the browser tests..."
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version
