#!/usr/bin/env bash
# Provisions one lab node (run as root by vagrant's shell provisioner; the Vagrantfile passes
# NODE_INDEX, NODES, NODE_NAME, NODE_IP, PRIVATE_SUBNET, PRIVATE_PREFIX, CONTROL_PLANE_IP,
# POD_CIDR, KPROXY_MODE, KPROXY_INSTALL). Safe to run again.
#  1. hostname, the private network address (vagrant's own guest network code is off) and a
#     route to each other node's pod CIDR (10.244.J.0/24) through that node's private address,
#  2. kproxy from the host's wheelhouse (/vagrant/share/wheelhouse: the VMs cannot reach PyPI)
#     into the venv /opt/kproxy, `kproxy` on PATH,
#  3. `kproxy install control-plane` on node1, which also issues the other nodes' join files
#     (`kproxy install issue-node`); `kproxy install node` on the others, with the join file
#     vagrant/run.sh copies from node1 into the share folder. KPROXY_INSTALL=auto runs this
#     step when the installed kproxy has the `install` command, yes requires it, no skips it.
set -euo pipefail
share=/vagrant/share

hostnamectl set-hostname "$NODE_NAME" 2>/dev/null || echo "$NODE_NAME" >/etc/hostname
hostname "$NODE_NAME"
sed -i "/ $NODE_NAME\$/d; /^127.0.1.1 /d" /etc/hosts
echo "$NODE_IP $NODE_NAME" >>/etc/hosts

routes=""
for ((j = 1; j <= NODES; j++)); do
    ((j == NODE_INDEX)) && continue
    routes+=$'\n'"[Route]"$'\n'"Destination=10.244.$j.0/24"$'\n'"Gateway=$PRIVATE_SUBNET.$((10 + j))"$'\n'
done
cat >/etc/systemd/network/20-eth1.network <<NET
[Match]
Name=eth1

[Network]
Address=$NODE_IP/$PRIVATE_PREFIX
$routes
NET
echo net.ipv4.ip_forward=1 >/etc/sysctl.d/60-kproxy-node.conf
sysctl -qw net.ipv4.ip_forward=1
# Applied now as well: networkd may not take a reload before the next boot under emulation.
ip link set eth1 up
ip addr replace "$NODE_IP/$PRIVATE_PREFIX" dev eth1
for ((j = 1; j <= NODES; j++)); do
    ((j == NODE_INDEX)) || ip route replace "10.244.$j.0/24" via "$PRIVATE_SUBNET.$((10 + j))" dev eth1
done
networkctl reload >/dev/null 2>&1 || true

venv=/opt/kproxy
[[ -x $venv/bin/pip ]] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --no-index --find-links "$share/wheelhouse" kproxy
# kproxy itself again: a rebuilt wheel keeps its version number.
"$venv/bin/pip" install -q --no-index --find-links "$share/wheelhouse" --force-reinstall --no-deps kproxy
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

joins=/etc/kproxy/vagrant-joins   # node1: the other nodes' join files, fetched by run.sh
if [[ $NODE_INDEX == 1 ]]; then
    kproxy install control-plane --advertise-address "$NODE_IP" --node-name "$NODE_NAME" \
        --node-ip "$NODE_IP" --pod-cidr "$POD_CIDR" --mode "$KPROXY_MODE" --force
    install -d -m 700 "$joins"
    for ((j = 2; j <= NODES; j++)); do
        kproxy install issue-node "node$j" --out "$joins/node$j.yaml" --force \
            --node-ip "$PRIVATE_SUBNET.$((10 + j))" --pod-cidr "10.244.$j.0/24"
    done
else
    join=$share/joins/$NODE_NAME.yaml
    [[ -f $join ]] || { echo "no $join: run.sh copies it from node1" >&2; exit 1; }
    kproxy install node --apiserver "https://$CONTROL_PLANE_IP:6443" --join-file "$join" \
        --node-name "$NODE_NAME" --node-ip "$NODE_IP" --pod-cidr "$POD_CIDR" --mode "$KPROXY_MODE" --force
fi
