#!/usr/bin/env bash
# Builds the lab's Debian 12 (bookworm) box locally and adds it to vagrant as kproxy/debian12.
# Nothing is downloaded beyond Debian's packages (debootstrap from the machine's apt mirror):
# no Vagrant Cloud, no image registry. Needs root and scripts/install-vagrant-deps.sh.
#
# The image is a bare ext4 filesystem (no partition table, no bootloader: `mkfs.ext4 -d` fills
# it without a loop mount), so the VMs boot the kernel directly: its vmlinuz and initrd are kept
# next to the box and the Vagrantfile hands them to libvirt. The kernel is Debian's cloud kernel
# (has ip_vs). Networking is systemd-networkd: DHCP on eth0 (vagrant's management network); the
# private network on eth1 is written by the provisioner (vagrant/provision.sh).
#
# Output: vagrant/boxes/kproxy-debian12.box, vagrant/boxes/kproxy-debian12/{vmlinuz,initrd.img}.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/boxes
name=kproxy-debian12
box_name=${KPROXY_BOX:-kproxy/debian12}
mirror=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
                          || true)}
mirror=${mirror:-http://deb.debian.org/debian}
disk_gb=${KPROXY_BOX_DISK_GB:-4}
vagrant_keys=$(dirname "$(dpkg -L vagrant | grep -m1 '/keys/vagrant.pub$')")

# What the nodes need at run time: kproxy's kernel tools (every mode), python3 with venv and
# pip (ensurepip ships its own pip wheel, so no wheelhouse is needed for pip itself), rsync for
# vagrant's synced folder, sshd and sudo for vagrant.
packages=systemd,systemd-sysv,systemd-resolved,dbus,openssh-server,sudo,rsync,python3,python3-venv,\
iproute2,iputils-ping,linux-image-cloud-amd64,initramfs-tools,netbase,iptables,nftables,ipset,\
ipvsadm,conntrack,kmod,udev,procps,curl,ca-certificates

work=$(mktemp -d "${TMPDIR:-/var/tmp}/kproxy-box.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$out/$name"

echo "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -30 "$work/debootstrap.log"; exit 1; }

# The guest's configuration, written from here (no chroot scripts beyond user creation).
echo kproxy-box >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 kproxy-box\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 defaults,noatime 0 1\n' >"$root/etc/fstab"
cat >"$root/etc/systemd/network/10-eth0.network" <<'NET'
[Match]
Name=eth0

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
NET
chroot "$root" systemctl enable systemd-networkd systemd-resolved ssh >/dev/null 2>&1
ln -sf /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
# Host keys are made at first boot (a box shared by several VMs must not share them).
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable ssh-hostkeys.service >/dev/null 2>&1
printf 'UseDNS no\n' >"$root/etc/ssh/sshd_config.d/vagrant.conf"
# A fresh machine-id per VM: DHCP client ids derive from it, and systemd would copy dbus'
# (made at package install) into an empty /etc/machine-id, giving every VM the same one and
# the same management address.
: >"$root/etc/machine-id"
ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"

# The vagrant user: vagrant's insecure key (vagrant replaces it on first boot), NOPASSWD sudo.
chroot "$root" useradd -m -s /bin/bash vagrant
install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$vagrant_keys/vagrant.pub" "$root/home/vagrant/.ssh/authorized_keys"
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' >"$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"
chroot "$root" apt-get clean

# Direct kernel boot: the kernel and initrd stay beside the box.
cp "$(readlink -f "$root/vmlinuz")" "$out/$name/vmlinuz"
cp "$(readlink -f "$root/initrd.img")" "$out/$name/initrd.img"

echo "image: ext4 ${disk_gb} GB (sparse) -> qcow2"
truncate -s "${disk_gb}G" "$work/root.raw"
mkfs.ext4 -q -L root -d "$root" "$work/root.raw"
qemu-img convert -c -O qcow2 "$work/root.raw" "$work/box.img"
rm -f "$work/root.raw"
printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$disk_gb" >"$work/metadata.json"
cat >"$work/Vagrantfile" <<'VF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "qemu"
  end
end
VF
tar -C "$work" -czf "$out/$name.box" metadata.json Vagrantfile box.img
echo "built $out/$name.box ($(du -h "$out/$name.box" | cut -f1))"
vagrant box add --force --name "$box_name" "$out/$name.box"
