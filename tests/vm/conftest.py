"""tests/vm: tests/vm/guest/ runs only inside the test VM (KPROXY_IN_VM=1, set by
kproxy.vm.harness); on the host, tests/vm/test_vm.py boots the VM once and runs it there."""
import os

collect_ignore = [] if os.environ.get("KPROXY_IN_VM") == "1" else ["guest"]
