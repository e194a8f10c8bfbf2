"""The scheduler: binds pods that have no node to the node that fits them best.

- snapshot.py: what the scheduler knows of a node (allocatable, what its pods request, ports,
  labels, taints), built from plain API objects;
- filters.py / scores.py: kube-scheduler's default plugins as pure functions;
- framework.py: one scheduling decision (filter, score, pick) and the FailedScheduling message;
- loop.py: informers, the queue of pending pods, binding and Events (the only I/O).
"""
