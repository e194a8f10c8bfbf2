"""A pod's volumes on this node: fetches what they reference, asks the TokenRequest API for
projected tokens, writes the files (atomicwriter) and keeps them fresh.

Guarantees:
- every volume lives under <root-dir>/pods/<uid>/volumes/<plugin>/<name>, removed by
  `tear_down`; an emptyDir with medium Memory is a tmpfs (size from sizeLimit) mounted there
  when this process may mount, else a plain directory, and `memory_note` says why;
- `set_up` raises MountError (kubelet's FailedMount message) for a missing object or key, and
  writes nothing for that volume; other volumes and other pods are unaffected;
- `refresh` rewrites ConfigMap/Secret/downwardAPI contents when they changed (an atomic
  `..data` swap, never a partial file) and renews a token at 80% of its lifetime (kubelet's
  rule), or after 24 hours, whichever is first;
- `remove_leftover_mounts` unmounts the tmpfs a crashed kubelet left under its root-dir.
"""
from __future__ import annotations

import asyncio
import base64
import calendar
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Callable

from kproxy.api.resources import CONFIG_MAPS, SECRETS, SERVICE_ACCOUNTS
from kproxy.api.status import ApiError
from kproxy.api.validation.common import parse_quantity
from kproxy.kubelet.atomicwriter import write_atomic
from kproxy.kubelet.volumes import (BindMount, MountError, TokenSpec, bind_mounts, plugin_of, referenced_objects,
                                    token_specs, volume_dir, volume_files)

log = logging.getLogger(__name__)

REFRESH_PERIOD = 10.0  # how often ConfigMap/Secret contents are compared (kubelet: sync period + cache TTL)
TOKEN_MAX_AGE = 24 * 3600.0
TOKEN_REFRESH_FRACTION = 0.8


@dataclass(frozen=True)
class IssuedToken:
    token: str
    issued_at: float  # wall-clock seconds
    expires_at: float

    def refresh_at(self) -> float:
        """kubelet's requiresRefresh: at 80% of the lifetime, or 24 hours after issue."""
        lifetime = self.expires_at - self.issued_at
        return min(self.issued_at + TOKEN_REFRESH_FRACTION * lifetime, self.issued_at + TOKEN_MAX_AGE)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of this process's mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            point = fields[4].encode().decode("unicode_escape")
            out.append((point, fields[sep + 1]))
    return out


def _umount(path: str) -> None:
    subprocess.run(["umount", "-l", path], capture_output=True)


def remove_leftover_mounts(root_dir: str, keep: frozenset[str] = frozenset()) -> list[str]:
    """Unmounts every mount below <root_dir>/pods (an earlier kubelet's tmpfs volumes) but
    those of the pod uids in `keep`."""
    prefix = os.path.join(os.path.realpath(root_dir), "pods") + "/"
    gone = [point for point, _ in _mounts()
            if point.startswith(prefix) and point[len(prefix):].split("/", 1)[0] not in keep]
    for point in sorted(gone, reverse=True):
        _umount(point)
    return gone


def object_data(kind: str, obj: dict) -> dict[str, bytes]:
    """A Secret's or ConfigMap's data as bytes (Secret values and binaryData base64-decoded)."""
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


class PodVolumes:
    def __init__(self, client: Any, pod: dict, pod_dir: str, clock: Callable[[], float] = time.time):
        self.client = client
        self.pod = pod
        self.pod_dir = pod_dir
        self.clock = clock
        meta = pod.get("metadata") or {}
        self.namespace, self.name, self.uid = str(meta.get("namespace")), str(meta.get("name")), str(meta.get("uid"))
        self.volumes: list[dict] = [v for v in (pod.get("spec") or {}).get("volumes") or [] if isinstance(v, dict)]
        self.tokens: dict[TokenSpec, IssuedToken] = {}
        self.ready = False
        self.next_refresh = 0.0  # monotonic
        self.memory_note = ""  # why a Memory emptyDir is a plain directory, when it is

    def mounts(self, container: dict) -> list[BindMount]:
        return bind_mounts(container, self.volumes, self.pod_dir)

    def refresh_due(self, now: float) -> bool:
        return self.ready and now >= self.next_refresh

    async def set_up(self, pod_ip: str, host_ip: str) -> list[str]:
        """Writes every volume; returns the names of volumes whose contents changed. Raises
        MountError for the first volume that cannot be set up."""
        objects = await self._objects()
        await self._tokens()
        changed = []
        for volume in self.volumes:
            target = volume_dir(self.pod_dir, volume)
            if target is None:
                raise MountError(str(volume.get("name")), "volume type not supported by this kubelet")
            if plugin_of(volume) == "emptyDir":
                await asyncio.to_thread(self._empty_dir, volume, target)
                continue
            files = volume_files(volume, self.pod, objects, {k: t.token for k, t in self.tokens.items()},
                                 pod_ip, host_ip)
            if await asyncio.to_thread(write_atomic, target, files):
                changed.append(str(volume.get("name")))
        self.ready = True
        self.next_refresh = time.monotonic() + REFRESH_PERIOD
        return changed

    async def refresh(self, pod: dict, pod_ip: str, host_ip: str) -> list[str]:
        """set_up again with the pod's latest labels/annotations; errors keep the old files."""
        self.pod = pod
        try:
            return await self.set_up(pod_ip, host_ip)
        finally:
            self.next_refresh = time.monotonic() + REFRESH_PERIOD

    async def _objects(self) -> dict[tuple[str, str], dict[str, bytes] | None]:
        found: dict[tuple[str, str], dict[str, bytes] | None] = {}
        for kind, name in sorted(referenced_objects(self.volumes)):
            try:
                obj = await self.client.get(SECRETS if kind == "Secret" else CONFIG_MAPS, name, self.namespace)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                found[(kind, name)] = None
                continue
            found[(kind, name)] = object_data(kind, obj)
        return found

    async def _tokens(self) -> None:
        """Issues or renews the projected tokens that are due (TokenRequest bound to the pod)."""
        account = str((self.pod.get("spec") or {}).get("serviceAccountName") or "default")
        now = self.clock()
        for spec in token_specs(self.volumes):
            held = self.tokens.get(spec)
            if held is not None and now < held.refresh_at():
                continue
            body: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
                "expirationSeconds": spec.expiration_seconds,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}}}
            if spec.audience:
                body["spec"]["audiences"] = [spec.audience]
            path = SERVICE_ACCOUNTS.object_path(account, self.namespace) + "/token"
            try:
                answer = await self.client.request("POST", path, body=body)
            except ApiError as exc:
                if held is not None and now < held.expires_at:
                    log.warning("pod %s/%s: token not renewed (kept until it expires): %s", self.namespace,
                                self.name, exc)
                    continue
                volume = next(str(v.get("name")) for v in self.volumes if spec in token_specs([v]))
                raise MountError(volume, f"failed to fetch token: {exc}") from None
            expires = _parse_time((answer.get("status") or {}).get("expirationTimestamp"), now
                                  + spec.expiration_seconds)
            self.tokens[spec] = IssuedToken(str((answer.get("status") or {}).get("token") or ""), now, expires)

    def _empty_dir(self, volume: dict, target: str) -> None:
        if os.path.isdir(target):
            return
        os.makedirs(target, exist_ok=True)
        os.chmod(target, 0o777)
        source = volume.get("emptyDir") or {}
        if source.get("medium") != "Memory":
            return
        options = "mode=0777"
        size = parse_quantity(source.get("sizeLimit")) if source.get("sizeLimit") is not None else None
        if size is not None:
            options += f",size={int(size)}"
        if os.geteuid() != 0:
            self.memory_note = f"emptyDir {volume.get('name')}: not root, a plain directory instead of a tmpfs"
            return
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", target], capture_output=True,
                              text=True)
        if done.returncode != 0:
            self.memory_note = (f"emptyDir {volume.get('name')}: tmpfs not mounted ({done.stderr.strip()}), "
                                "a plain directory instead")
            return
        # its own peer group: nothing mounted inside it propagates anywhere else
        subprocess.run(["mount", "--make-private", target], capture_output=True)

    def tear_down(self) -> None:
        """Unmounts the pod's tmpfs volumes and removes every volume directory."""
        volumes = os.path.join(self.pod_dir, "volumes")
        if not os.path.isdir(volumes):
            return
        prefix = os.path.realpath(volumes) + "/"
        for point, _ in sorted(_mounts(), reverse=True):
            if point.startswith(prefix):
                _umount(point)
        shutil.rmtree(volumes, ignore_errors=True)


def _parse_time(text: Any, default: float) -> float:
    try:
        return float(calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return default
