#!/usr/bin/env bash
# Installs what kproxy needs on a Debian machine (as root): system packages from Debian, then
# the Python side (scripts/install-deps-py.sh: .venv, editable install, Cython build).
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(iptables iproute2 conntrack ipset nftables kmod procps psmisc tmux
          etcd-server etcd-client haproxy python3 python3-venv python3-dev gcc make curl
          # the IPVS test VM (tests/vm): Debian's kernel (IPVS, dummy links) under qemu
          linux-image-amd64 qemu-system-x86 ipvsadm busybox-static
          # containers: the runtime, and what `kproxy image build` takes the images' files from
          containerd runc python3-minimal
          # the kubelet's containerd runtime (kproxy/containerd): Debian's CNI plugins
          containernetworking-plugins
          # systemd-analyze verify of the units `kproxy install` renders (tests/install)
          systemd)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

exec scripts/install-deps-py.sh
