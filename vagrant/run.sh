#!/usr/bin/env bash
# Runs the Vagrant lab on a machine without a running libvirt, as root, leaving the machine's
# own network namespace and libvirt configuration untouched:
#   - a network namespace LAB (KPROXY_VAGRANT_LAB, default kproxy-vagrant) holds libvirt's
#     bridges, NAT rules, dnsmasq and the VMs' network;
#   - a mount namespace (kept in STATE/mntns) binds libvirt's config, state, runtime and log
#     directories to folders under STATE, so libvirtd's qemu.conf (user = root) and its
#     networks, storage pool and sockets exist only there;
#   - libvirtd runs in both namespaces, and so does every vagrant command of this script.
#
#   run.sh up            box (if missing), wheelhouse, namespaces, libvirtd, VMs, provisioning
#                        (again: provisions the running VMs again, with a new wheelhouse)
#   run.sh status        vagrant status and the lab's processes
#   run.sh ssh NODE [-- CMD...]
#   run.sh test          tests/vagrant against the running lab
#   run.sh down          VMs, libvirt networks, daemons, namespaces, STATE: nothing left
#   run.sh vagrant ARGS  any vagrant command inside the lab
# Environment: KPROXY_NODES (2), KPROXY_MODE (iptables), KPROXY_INSTALL (auto),
# KPROXY_WHEEL_SOURCE (the kproxy tree the wheel is built from; default this repository), and
# the Vagrantfile's other variables.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
lab=${KPROXY_VAGRANT_LAB:-kproxy-vagrant}
state=${KPROXY_VAGRANT_STATE:-/var/lib/$lab}
share=$state/share
nodes=${KPROXY_NODES:-2}
export KPROXY_NODES=$nodes KPROXY_VAGRANT_SHARE=$share KPROXY_CONSOLE_DIR=$state/console
export VAGRANT_CWD=$here VAGRANT_DOTFILE_PATH=$state/vagrant VAGRANT_DEFAULT_PROVIDER=libvirt
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_NO_PARALLEL=1 LIBVIRT_DEFAULT_URI=qemu:///system
# libvirt's directories, each bound to STATE/<name> inside the lab's mount namespace.
libvirt_dirs=(etc:/etc/libvirt lib:/var/lib/libvirt run:/run/libvirt log:/var/log/libvirt cache:/var/cache/libvirt)

log() { printf '[vagrant-lab %s] %s\n' "$(date +%T)" "$*" >&2; }

# Runs a command inside the lab's network and mount namespaces.
in_lab() { nsenter --net="/run/netns/$lab" --mount="$state/mntns" -- "$@"; }

namespaces_up() {
    [[ -e /run/netns/$lab ]] || ip netns add "$lab"
    ip -n "$lab" link set lo up
    ip netns exec "$lab" sysctl -qw net.ipv4.ip_forward=1
    mkdir -p "$state" "$share" "$state/console"
    if ! mountpoint -q "$state"; then
        mount --bind "$state" "$state"
        mount --make-private "$state"
    fi
    if ! findmnt -n "$state/mntns" >/dev/null; then
        touch "$state/mntns"
        unshare --mount="$state/mntns" --propagation private true
        local d src
        for d in "${libvirt_dirs[@]}"; do
            src=$state/${d%%:*}
            if [[ ! -d $src ]]; then
                mkdir -p "$src"
                # Start from the packaged configuration, then confine qemu's settings.
                [[ ${d%%:*} == etc ]] && cp -a /etc/libvirt/. "$src/"
            fi
            mkdir -p "${d#*:}"
            nsenter --mount="$state/mntns" -- mount --bind "$src" "${d#*:}"
        done
        # sysfs as seen from the lab's network namespace (libvirt reads its bridges there).
        nsenter --net="/run/netns/$lab" --mount="$state/mntns" -- \
            sh -c 'umount -l /sys && mount -t sysfs sysfs /sys'
        cat >>"$state/etc/qemu.conf" <<'CONF'
# kproxy vagrant lab (vagrant/run.sh)
user = "root"
group = "root"
dynamic_ownership = 0
stdio_handler = "file"
remember_owner = 0
CONF
    fi
}

libvirtd_up() {
    if [[ -f $state/libvirtd.pid ]] && kill -0 "$(cat "$state/libvirtd.pid")" 2>/dev/null; then
        return
    fi
    log "libvirtd in network namespace $lab"
    in_lab libvirtd -d -p "$state/libvirtd.pid"
    local i
    for i in $(seq 100); do
        in_lab virsh -q version >/dev/null 2>&1 && return
        sleep 0.2
    done
    log "libvirtd did not answer"; exit 1
}

box_up() {
    local box=${KPROXY_BOX:-kproxy/debian12}
    if [[ $box == kproxy/debian12 ]] && ! vagrant box list 2>/dev/null | grep -q "^kproxy/debian12 "; then
        log "building the box (vagrant/build-box.sh)"
        "$here/build-box.sh"
    fi
}

# What the VMs install from (they cannot reach PyPI): kproxy's wheel and its dependencies, and
# the host's kubectl (a static binary) for root on the control plane.
share_up() {
    log "wheelhouse: pip wheel kproxy and its dependencies -> $share/wheelhouse"
    local py=$repo/.venv/bin/python
    [[ -x $py ]] || py=python3
    rm -rf "$share/wheelhouse"
    "$py" -m pip wheel -q --no-cache-dir -w "$share/wheelhouse" "${KPROXY_WHEEL_SOURCE:-$repo}"
    mkdir -p "$share/bin"
    if command -v kubectl >/dev/null; then cp -L "$(command -v kubectl)" "$share/bin/kubectl"; fi
}

# Copies the other nodes' join files (`kproxy install issue-node` on node1) into the share
# folder, for their `kproxy install node`. None when node1 ran no `kproxy install`.
fetch_join_files() {
    mkdir -p "$share/joins"
    local i
    for ((i = 2; i <= nodes; i++)); do
        if in_lab vagrant ssh node1 -c "sudo cat /etc/kproxy/vagrant-joins/node$i.yaml" \
                >"$share/joins/node$i.yaml.tmp" 2>/dev/null; then
            mv "$share/joins/node$i.yaml.tmp" "$share/joins/node$i.yaml"
        else
            rm -f "$share/joins/node$i.yaml.tmp"
        fi
    done
    chmod -R go-rwx "$share/joins"
}

# Boots NODE and provisions it; a running NODE gets the share folder again and is provisioned
# again (so `up` is idempotent and picks up a new wheelhouse).
node_up() {
    if in_lab vagrant status "$1" --machine-readable 2>/dev/null | grep -q ",state,running$"; then
        in_lab vagrant rsync "$1"
        in_lab vagrant provision "$1"
    else
        in_lab vagrant up --no-parallel --provision "$1"
    fi
}

cmd_up() {
    local start=$SECONDS
    box_up
    namespaces_up
    libvirtd_up
    share_up
    log "node1 (control plane), mode ${KPROXY_MODE:-iptables}"
    node_up node1
    fetch_join_files
    local i
    for ((i = 2; i <= nodes; i++)); do
        log "node$i"
        node_up "node$i"
    done
    log "lab up in $((SECONDS - start)) s"
}

cmd_down() {
    if [[ -e /run/netns/$lab && -e $state/mntns ]] && findmnt -n "$state/mntns" >/dev/null; then
        in_lab vagrant destroy -f >/dev/null 2>&1 || true
    fi
    # Whatever still runs in the lab's network namespace (libvirtd, qemu, dnsmasq) was started
    # by this script: stop it by pid.
    if [[ -e /run/netns/$lab ]]; then
        local pids i
        for i in 1 2 3 4 5 6 7 8 9 10; do
            pids=$(ip netns pids "$lab" || true)
            [[ -z $pids ]] && break
            # shellcheck disable=SC2086
            kill $([[ $i -gt 5 ]] && echo -9) $pids 2>/dev/null || true
            sleep 1
        done
        ip netns delete "$lab"
    fi
    if [[ -e $state/mntns ]]; then umount "$state/mntns" 2>/dev/null || true; fi
    if mountpoint -q "$state" 2>/dev/null; then umount "$state"; fi
    rm -rf "$state"
    log "lab $lab removed"
}

cmd_status() {
    if [[ ! -e /run/netns/$lab ]]; then echo "lab $lab: not up"; return; fi
    in_lab vagrant status || true
    echo "processes in network namespace $lab:"
    local p
    for p in $(ip netns pids "$lab"); do ps -o pid=,comm= -p "$p" || true; done
}

cmd_ssh() {
    local node=$1; shift
    [[ ${1:-} == -- ]] && shift
    if (($#)); then
        in_lab vagrant ssh "$node" -c "$*"
    else
        in_lab vagrant ssh "$node"
    fi
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    ssh) shift; cmd_ssh "$@" ;;
    vagrant) shift; in_lab vagrant "$@" ;;
    test) shift; KPROXY_VAGRANT_TESTS=1 KPROXY_VAGRANT_REUSE=1 KPROXY_VAGRANT_LAB=$lab KPROXY_VAGRANT_STATE=$state \
              exec "$repo/.venv/bin/pytest" "$repo/tests/vagrant" -p no:cacheprovider -m vagrant -s "$@" ;;
    *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
