#!/usr/bin/env bash
# Find (or install) the headless Chromium the leaderboard's browser test drives; prints its path last.
#   bash scripts/chromium.sh
# Uses $CAPBENCH_CHROMIUM, else `chromium` / `chromium-browser` on PATH, else installs Debian's `chromium`
# package with apt-get (as root, or through sudo without a password). Playwright's own browser download is not
# used: it needs the internet.
set -euo pipefail
find_chromium() {
    if [ -n "${CAPBENCH_CHROMIUM:-}" ] && [ -x "$CAPBENCH_CHROMIUM" ]; then echo "$CAPBENCH_CHROMIUM"; return 0; fi
    command -v chromium || command -v chromium-browser || return 1
}
if path=$(find_chromium); then echo "$path"; exit 0; fi
if ! command -v apt-get >/dev/null; then
    echo "no chromium on PATH and no apt-get to install it: install Chromium and set CAPBENCH_CHROMIUM" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
echo "installing chromium (apt-get, about 30 s)..." >&2
$SUDO apt-get install -y -q chromium >&2 || { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q chromium >&2; }
find_chromium
