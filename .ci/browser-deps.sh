#!/usr/bin/env bash
# Headless Chromium for tests/test_browser.py: Debian's `chromium` (Playwright drives /usr/bin/chromium and never
# downloads a browser) and a CJK font, so the screenshot shows the Chinese titles. Idempotent and quiet.
set -euo pipefail
PACKAGES=(chromium fonts-noto-cjk)
if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
