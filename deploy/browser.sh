#!/usr/bin/env bash
# Installs what the console's browser tests (workers/tests/console_browser.rs) drive: Chromium
# at /usr/bin/chromium and its WebDriver, /usr/bin/chromedriver (Debian packages `chromium` and
# `chromium-driver`). Both already there: nothing is done. Idempotent.
#
#   deploy/browser.sh
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "browser.sh: need root (or sudo) to run: $*" >&2
    return 1
  fi
}

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  echo "browser.sh: $CHROMIUM and $CHROMEDRIVER are installed" >&2
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "browser.sh: $CHROMIUM or $CHROMEDRIVER is missing and there is no apt-get;" \
    "install Chromium and its matching chromedriver at those paths by hand" >&2
  exit 1
fi

echo "browser.sh: installing chromium and chromium-driver with apt-get" >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null

for bin in "$CHROMIUM" "$CHROMEDRIVER"; do
  if [ ! -x "$bin" ]; then
    echo "browser.sh: installed the packages but $bin is still missing" >&2
    exit 1
  fi
done
echo "browser.sh: $("$CHROMIUM" --version 2>/dev/null || echo chromium); $("$CHROMEDRIVER" --version 2>/dev/null || echo chromedriver)" >&2
