#!/usr/bin/env bash
# Makes sure this machine has a Vulkan device for xp's wgpu backend and says which:
# without a Vulkan driver it installs Mesa's lavapipe (a Vulkan implementation that
# runs on the CPU) from Debian, which needs root and apt-get. It never fails: without
# a device the wgpu tests skip themselves with a message, and this script says so.
#   scripts/wgpu/setup.sh          # install if needed, then report
#   scripts/wgpu/setup.sh --check  # report only
set -uo pipefail

icds() { ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null; }
loader() { ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; }

if [ "${1:-}" != "--check" ] && { [ -z "$(icds)" ] || ! loader; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "wgpu: no Vulkan driver; installing Mesa's lavapipe (mesa-vulkan-drivers)"
        pkgs="mesa-vulkan-drivers libvulkan1 vulkan-tools"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq $pkgs >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $pkgs >/dev/null 2>&1; } \
            || echo "wgpu: apt-get install $pkgs failed"
    else
        echo "wgpu: no Vulkan driver, and cannot install one here (needs root and apt-get)"
    fi
fi

if command -v vulkaninfo >/dev/null; then
    devices=$(vulkaninfo --summary 2>/dev/null | sed -n 's/^[[:space:]]*deviceName[[:space:]]*=[[:space:]]*//p')
else
    # Without vulkan-tools: the installed drivers are all there is to say.
    devices=$(icds | xargs -r -n1 basename | sed 's/\.json$//')
fi
if [ -n "$devices" ] && loader; then
    echo "wgpu: Vulkan device(s) present:"
    echo "$devices" | sed 's/^/  /'
else
    echo "wgpu: no Vulkan device; the wgpu tests will skip themselves"
fi
exit 0
