"""containerd for the kubelet: a per-node daemon (daemon.py), its CNI network (cni.py) and the
CRI gRPC client (cri.py, over stubs that protogen.py generates from
proto/kproxy/containerd/cri_api.proto). Images come from kproxy.images."""
