#!/usr/bin/env bash
# Installs what the Vagrant lab (vagrant/) needs on a Debian machine, as root: vagrant with the
# libvirt provider, libvirt's daemon (run only inside the lab's own network namespace by
# vagrant/run.sh), and the box builder's tools. Kept apart from install-deps.sh because it is
# heavy (libvirt, ruby, about 150 MB) and only `make vagrant-*` needs it.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86
          qemu-utils dnsmasq-base ebtables debootstrap e2fsprogs iproute2 python3-venv)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # libvirt-daemon-system's postinst starts libvirtd and its default network in the machine's
    # namespace; policy-rc.d 101 keeps every service stopped during the install.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
