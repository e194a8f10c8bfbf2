"""`kproxy kubelet`: registers a Node, heartbeats, and runs the pods bound to it as processes
in per-pod network namespaces.

Pure decisions (what a pod's status is, when a crashed container may start again, what a probe
result means, a container's command and environment) live in backoff, probes, status and
containerspec; the I/O (processes, namespaces, the apiserver) in runtime, podworker and node.
"""
