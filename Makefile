# kproxy: run as root on Debian. `make demo` and `make test` install what they need.
# `make test-fast` needs neither root nor Debian packages: only Python (deps-py).
PY := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: deps deps-py lint test test-fast test-host test-vm demo demo-down bench clean
.PHONY: deps-vagrant vagrant-box vagrant-up vagrant-test vagrant-down test-vagrant

# Debian packages (apt, as root), then deps-py.
deps:
	scripts/install-deps.sh

# Python only, no root: .venv with kproxy installed in editable mode and the test extras.
deps-py:
	scripts/install-deps-py.sh

# ruff on the tree and mypy on the typed packages (scripts/lint.sh): seconds, no root.
lint: deps-py
	scripts/lint.sh

# The whole suite: unit, golden, apiserver with real kubectl, kernel and e2e in namespaces, and
# last the IPVS mode's kernel tests and scenario suite inside one boot of a Debian kernel under
# qemu (this machine's kernel has no IPVS; tests/vm, about 16 minutes under emulation).
test: deps
	$(PYTEST) tests -p no:cacheprovider

# Everything but the VM.
test-host: deps
	$(PYTEST) tests -p no:cacheprovider -m "not vm"

# Only the VM: IPVS mode's kernel tests and scenario suite (Debian kernel under qemu).
test-vm: deps
	$(PYTEST) tests/vm -p no:cacheprovider

# Only what needs neither root nor namespaces (nor Debian packages beyond python3-venv).
test-fast: deps-py
	$(PYTEST) tests -p no:cacheprovider -m "not kernel and not e2e"

# The all-in-one node in a lab: apiserver, controllers, agents, a Service over three pods.
demo: deps
	$(PY) -m kproxy lab demo

demo-down: deps
	$(PY) -m kproxy lab down

bench: deps
	$(PY) -m bench

# The Vagrant lab (vagrant/): KPROXY_NODES VMs (2), agent mode KPROXY_MODE (iptables), libvirt
# confined to a network namespace of its own by vagrant/run.sh. Heavy Debian packages
# (vagrant, libvirt): scripts/install-vagrant-deps.sh, only for these targets.
deps-vagrant: deps
	scripts/install-vagrant-deps.sh

vagrant-box: deps-vagrant
	vagrant/build-box.sh

vagrant-up: deps-vagrant
	vagrant/run.sh up

vagrant-test: deps-vagrant
	vagrant/run.sh test

vagrant-down:
	vagrant/run.sh down

# A lab of its own for this run (boot, provision, checks, down): tests/vagrant.
test-vagrant: deps-vagrant
	KPROXY_VAGRANT_TESTS=1 $(PYTEST) tests/vagrant -p no:cacheprovider -m vagrant -s

clean:
	rm -rf build *.egg-info kproxy/_fastpath.c kproxy/_fastpath*.so
