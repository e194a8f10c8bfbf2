"""The VM harness: boots a Debian kernel with virtme-ng over the host's filesystem and runs one
command inside, bringing back its output and exit status (see harness.py)."""
from .harness import VmError, VmResult, find_kernel, run_in_vm  # noqa: F401
