#!/usr/bin/env bash
# Installs Debian's Chromium for the report's browser check
# (tests/cli/report_render.rs renders report.html headless and measures it) when it
# is missing. Needs root and apt-get; never fails: without Chromium that test skips
# itself with a message.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
        || echo "chromium: apt-get install chromium failed"
fi
if [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
else
    echo "chromium: not installed; the report's browser check will skip itself"
fi
exit 0
