"""A thin client of the Container Runtime Interface (runtime.v1) over gRPC on a unix socket.

Messages are the generated classes of proto/kproxy/containerd/cri_api.proto (`pb`); each
method is one RPC with a deadline, and every failure is a CriError carrying the gRPC status
code, so callers can tell "not found" from "runtime down" (UNAVAILABLE)."""
from __future__ import annotations

import time
from typing import Mapping, Sequence

import grpc

from kproxy.containerd import protogen

protogen.ensure()
from kproxy.containerd import cri_api_pb2 as pb  # noqa: E402  (generated just above when stale)
from kproxy.containerd import cri_api_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["CriClient", "CriError", "pb"]

DEFAULT_TIMEOUT = 60.0  # CRI calls that create things (sandboxes, containers) take seconds under load


class CriError(RuntimeError):
    """An RPC failed: `code` is the grpc.StatusCode, `details` the runtime's message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{method}: {details or code.name}")
        self.method, self.code, self.details = method, code, details

    @property
    def not_found(self) -> bool:
        return self.code == grpc.StatusCode.NOT_FOUND

    @property
    def unavailable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class CriClient:
    def __init__(self, socket: str, timeout: float = DEFAULT_TIMEOUT):
        self.socket, self.timeout = socket, timeout
        self._channel = grpc.insecure_channel("unix://" + socket)
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def _call(self, stub, method: str, request, timeout: float | None = None):
        try:
            return getattr(stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as exc:
            raise CriError(method, exc.code(), exc.details() or "") from None

    # -- the runtime ---------------------------------------------------------------------

    def version(self, timeout: float | None = None) -> pb.VersionResponse:
        return self._call(self._runtime, "Version", pb.VersionRequest(version="v1"), timeout)

    def wait_ready(self, deadline: float) -> pb.VersionResponse:
        """Version, retried until the runtime answers or the monotonic `deadline` passes (a
        containerd that has just started says "server is not initialized yet" while it
        recovers its containers)."""
        while True:
            try:
                return self.version(timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            except CriError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.1)

    def status(self) -> pb.StatusResponse:
        return self._call(self._runtime, "Status", pb.StatusRequest())

    def run_pod_sandbox(self, config: pb.PodSandboxConfig) -> str:
        return self._call(self._runtime, "RunPodSandbox", pb.RunPodSandboxRequest(config=config)).pod_sandbox_id

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self._call(self._runtime, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self._call(self._runtime, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))

    def pod_sandbox_status(self, sandbox_id: str) -> pb.PodSandboxStatus:
        return self._call(self._runtime, "PodSandboxStatus",
                          pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id)).status

    def list_pod_sandboxes(self, labels: Mapping[str, str] | None = None) -> list[pb.PodSandbox]:
        request = pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(label_selector=dict(labels or {})))
        return list(self._call(self._runtime, "ListPodSandbox", request).items)

    def create_container(self, sandbox_id: str, config: pb.ContainerConfig,
                         sandbox_config: pb.PodSandboxConfig) -> str:
        request = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        return self._call(self._runtime, "CreateContainer", request).container_id

    def start_container(self, container_id: str) -> None:
        self._call(self._runtime, "StartContainer", pb.StartContainerRequest(container_id=container_id))

    def stop_container(self, container_id: str, grace: int) -> None:
        self._call(self._runtime, "StopContainer", pb.StopContainerRequest(container_id=container_id, timeout=grace),
                   timeout=self.timeout + grace)

    def remove_container(self, container_id: str) -> None:
        self._call(self._runtime, "RemoveContainer", pb.RemoveContainerRequest(container_id=container_id))

    def container_status(self, container_id: str, verbose: bool = False) -> pb.ContainerStatusResponse:
        return self._call(self._runtime, "ContainerStatus",
                          pb.ContainerStatusRequest(container_id=container_id, verbose=verbose))

    def list_containers(self, sandbox_id: str = "", labels: Mapping[str, str] | None = None) -> list[pb.Container]:
        request = pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=sandbox_id,
                                                                     label_selector=dict(labels or {})))
        return list(self._call(self._runtime, "ListContainers", request).containers)

    def exec_sync(self, container_id: str, cmd: Sequence[str], timeout: int = 0) -> pb.ExecSyncResponse:
        request = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        return self._call(self._runtime, "ExecSync", request, timeout=self.timeout + timeout)

    # -- images --------------------------------------------------------------------------

    def image_status(self, image: str) -> pb.Image | None:
        """The image when the runtime holds it, else None."""
        response = self._call(self._images, "ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=image)))
        return response.image if response.HasField("image") else None

    def pull_image(self, image: str) -> str:
        return self._call(self._images, "PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=image))).image_ref

    def list_images(self) -> list[pb.Image]:
        return list(self._call(self._images, "ListImages", pb.ListImagesRequest()).images)
