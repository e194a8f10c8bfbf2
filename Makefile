# kproxy: run as root on Debian. `make demo` and `make test` install what they need.
PY := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: deps vm-deps test test-fast test-vm demo demo-down bench clean

deps:
	scripts/install-deps.sh

# The whole suite: unit, golden, apiserver with real kubectl, kernel and e2e in namespaces.
# IPVS needs a kernel this machine lacks: its tests boot a VM (make test-vm), kept out of this
# run until the ipvs scenario suite passes there and fits CI's time.
test: deps
	$(PYTEST) tests -p no:cacheprovider -m "not vm"

vm-deps: deps
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		linux-image-amd64 qemu-system-x86 ipvsadm busybox-static >/dev/null
	.venv/bin/pip install -q --disable-pip-version-check -e '.[test,fast,vm]'

# IPVS mode's kernel tests and scenario suite inside one boot of a Debian kernel under qemu.
test-vm: vm-deps
	$(PYTEST) tests/vm -p no:cacheprovider

# Only what needs neither root nor namespaces.
test-fast: deps
	$(PYTEST) tests -p no:cacheprovider -m "not kernel and not e2e"

# The all-in-one node in a lab: apiserver, controllers, agents, a Service over three pods.
demo: deps
	$(PY) -m kproxy lab demo

demo-down: deps
	$(PY) -m kproxy lab down

bench: deps
	$(PY) -m bench

clean:
	rm -rf build *.egg-info kproxy/_fastpath.c kproxy/_fastpath*.so
