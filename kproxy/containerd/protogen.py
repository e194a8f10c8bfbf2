"""Generates the CRI gRPC stubs (cri_api_pb2.py with its .pyi, cri_api_pb2_grpc.py beside this file) from
proto/kproxy/containerd/cri_api.proto with grpcio-tools. The install step runs it
(`python -m kproxy.containerd.protogen`); the generated files are not committed.

Guarantee: after `ensure()` the stubs are at least as new as the .proto, or RuntimeError says
why they cannot be made."""
from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(os.path.dirname(HERE))
PROTO_ROOT = os.path.join(PROJECT, "proto")
PROTO = os.path.join("kproxy", "containerd", "cri_api.proto")
OUTPUTS = [os.path.join(HERE, name) for name in ("cri_api_pb2.py", "cri_api_pb2.pyi", "cri_api_pb2_grpc.py")]


def stale() -> bool:
    source = os.path.join(PROTO_ROOT, PROTO)
    if not os.path.exists(source):
        return False  # an installed copy without the proto: the stubs came with it
    mtime = os.path.getmtime(source)
    return any(not os.path.exists(out) or os.path.getmtime(out) < mtime for out in OUTPUTS)


def generate() -> None:
    try:
        from grpc_tools import protoc
    except ImportError:
        raise RuntimeError("grpcio-tools is not installed: run scripts/install-deps-py.sh") from None
    import grpc_tools
    includes = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO_ROOT}", f"-I{includes}", f"--python_out={PROJECT}",
                      f"--pyi_out={PROJECT}", f"--grpc_python_out={PROJECT}", os.path.join(PROTO_ROOT, PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {rc})")


def ensure() -> None:
    if stale():
        generate()


if __name__ == "__main__":
    ensure()
    print("CRI stubs:", ", ".join(os.path.relpath(p, PROJECT) for p in OUTPUTS))
