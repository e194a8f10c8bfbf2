"""tests/vagrant: the Vagrant lab (vagrant/), real VMs under libvirt. Collected only when
KPROXY_VAGRANT_TESTS=1 (`make test-vagrant`, `vagrant/run.sh test`): a boot and provision of
two VMs under software emulation takes tens of minutes, beyond what `make test` can hold."""
import os

# test_vagrantfile.py (no VM, seconds) is always collected.
collect_ignore = [] if os.environ.get("KPROXY_VAGRANT_TESTS") == "1" else ["test_lab.py"]
