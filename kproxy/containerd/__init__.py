"""containerd for the kubelet: a per-node daemon (daemon.py), the CRI gRPC client (cri.py,
over stubs that protogen.py generates from proto/kproxy/containerd/cri_api.proto) and the
OCI image archives the tests import (ociimage.py)."""
