# kproxy: run as root on Debian. `make demo` and `make test` install what they need.
PY := .venv/bin/python
PYTEST := .venv/bin/pytest

.PHONY: deps test test-fast demo demo-down bench clean

deps:
	scripts/install-deps.sh

# The whole suite: unit, golden, apiserver with real kubectl, kernel and e2e in namespaces.
test: deps
	$(PYTEST) tests -p no:cacheprovider

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
