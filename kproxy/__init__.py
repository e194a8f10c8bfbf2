"""kproxy: a Kubernetes Service data plane for Linux nodes."""

__version__ = "0.1.0"
