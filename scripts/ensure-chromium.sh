#!/usr/bin/env bash
# Makes sure Debian's `chromium` package is installed (/usr/bin/chromium), for the real-browser
# test in tests/waitlist.browser.test.mjs. Idempotent and quiet: a no-op when it is there.
# Installing needs root (CI runs as root); without root it only says what to run.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
[ -x "$CHROMIUM" ] && exit 0

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    echo "ensure-chromium: $CHROMIUM is missing; install it with: apt-get install -y chromium" >&2
    exit 1
  fi
else
  SUDO=()
fi

echo "ensure-chromium: installing Debian's chromium package" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
if ! { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  rm -f "$log"
  echo "ensure-chromium: the install failed" >&2
  exit 1
fi
rm -f "$log"
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: installed, but $CHROMIUM is still missing" >&2; exit 1; }
