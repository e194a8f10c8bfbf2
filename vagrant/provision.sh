#!/usr/bin/env bash
# Provisions one lab node (run as root by vagrant's shell provisioner; the Vagrantfile passes
# NODE_INDEX, NODE_NAME, NODE_IP, PRIVATE_PREFIX, CONTROL_PLANE_IP, POD_CIDR, KPROXY_MODE,
# KPROXY_INSTALL). Safe to run again.
#  1. hostname and the private network address (vagrant's own guest network code is off),
#  2. kproxy from the host's wheelhouse (/vagrant/share/wheelhouse: the VMs cannot reach PyPI)
#     into the venv /opt/kproxy, `kproxy` on PATH,
#  3. `kproxy install control-plane` on node1, `kproxy install node` on the others (with the join
#     file vagrant/run.sh copies from node1 into the share folder). KPROXY_INSTALL=auto runs this
#     step when the installed kproxy has the `install` command, yes requires it, no skips it.
set -euo pipefail
share=/vagrant/share

hostnamectl set-hostname "$NODE_NAME" 2>/dev/null || echo "$NODE_NAME" >/etc/hostname
hostname "$NODE_NAME"
sed -i "/ $NODE_NAME\$/d; /^127.0.1.1 /d" /etc/hosts
echo "$NODE_IP $NODE_NAME" >>/etc/hosts

cat >/etc/systemd/network/20-eth1.network <<NET
[Match]
Name=eth1

[Network]
Address=$NODE_IP/$PRIVATE_PREFIX
NET
if ! ip -4 addr show dev eth1 | grep -q "inet $NODE_IP/"; then
    ip link set eth1 up
    ip addr add "$NODE_IP/$PRIVATE_PREFIX" dev eth1
fi
networkctl reload >/dev/null 2>&1 || true

venv=/opt/kproxy
[[ -x $venv/bin/pip ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-index --find-links "$share/wheelhouse" --upgrade kproxy
ln -sf "$venv/bin/kproxy" /usr/local/bin/kproxy
kproxy version
if [[ -x $share/bin/kubectl ]]; then install -m 755 "$share/bin/kubectl" /usr/local/bin/kubectl; fi

has_install=no
kproxy install --help >/dev/null 2>&1 && has_install=yes
case "${KPROXY_INSTALL:-auto}" in
    no) exit 0 ;;
    auto) if [[ $has_install == no ]]; then
              echo "kproxy install: not in this kproxy yet; node installed without services (KPROXY_INSTALL=auto)"
              exit 0
          fi ;;
    yes) [[ $has_install == yes ]] || { echo "kproxy install: not in this kproxy (KPROXY_INSTALL=yes)" >&2; exit 1; } ;;
esac

if [[ $NODE_INDEX == 1 ]]; then
    kproxy install control-plane --advertise-address "$NODE_IP" --mode "$KPROXY_MODE"
    kproxy install node --apiserver "https://$NODE_IP:6443" --join-file /etc/kproxy/join.yaml \
        --node-name "$NODE_NAME" --pod-cidr "$POD_CIDR" --mode "$KPROXY_MODE"
else
    [[ -f $share/join.yaml ]] || { echo "no $share/join.yaml: run.sh copies it from node1" >&2; exit 1; }
    kproxy install node --apiserver "https://$CONTROL_PLANE_IP:6443" --join-file "$share/join.yaml" \
        --node-name "$NODE_NAME" --pod-cidr "$POD_CIDR" --mode "$KPROXY_MODE"
fi
