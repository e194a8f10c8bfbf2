"""A pod's volumes as pure functions: which files each volume holds, which Secrets,
ConfigMaps and service-account tokens they need, and where each container sees them.

What kubelet's volume plugins write: configMap and secret (every key, or the listed `items`,
with `defaultMode` / item `mode`, `optional`), downwardAPI (fieldRef metadata.name, namespace,
uid, labels, annotations and single labels/annotations; resourceFieldRef limits/requests of
cpu, memory and ephemeral-storage with a divisor), projected (serviceAccountToken, configMap,
secret, downwardAPI sources in one directory) and emptyDir (no files). The I/O (fetching,
writing, mounting) lives in volumemanager.py.

Guarantees: a volume that names a missing object or key (not optional) raises MountError with
kubelet's FailedMount message; file paths are relative, never absolute and never with `..`.
"""
from __future__ import annotations

import math
import posixpath
import shlex
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping

from kproxy.api.validation.common import parse_quantity
from kproxy.kubelet.containerspec import field_value

DEFAULT_MODE = 0o644
# kubelet's plugin directory names under pods/<uid>/volumes/
PLUGIN_DIRS = {"configMap": "kubernetes.io~configmap", "secret": "kubernetes.io~secret",
               "downwardAPI": "kubernetes.io~downward-api", "projected": "kubernetes.io~projected",
               "emptyDir": "kubernetes.io~empty-dir"}
FILE_KINDS = ("configMap", "secret", "downwardAPI", "projected")


class MountError(ValueError):
    """A volume cannot be set up; the message is kubelet's FailedMount text."""

    def __init__(self, volume: str, reason: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {reason}')
        self.volume = volume


@dataclass(frozen=True)
class TokenSpec:
    """A projected service-account token: what to ask the TokenRequest API for."""

    audience: str  # "" for the apiserver's own audiences
    expiration_seconds: int


@dataclass(frozen=True)
class VolumeFile:
    path: str  # relative to the volume's directory
    content: bytes
    mode: int


@dataclass(frozen=True)
class BindMount:
    source: str  # a directory (or file, with subPath) of the pod's volumes on the host
    target: str  # the container's mountPath
    read_only: bool


# (kind, name) -> data as bytes (Secrets decoded, ConfigMaps' data and binaryData), None: missing
Objects = Mapping[tuple[str, str], "Mapping[str, bytes] | None"]


def plugin_of(volume: Mapping[str, Any]) -> str | None:
    """The volume's kind ("configMap", "emptyDir", ...), None for one this kubelet lacks."""
    for kind in PLUGIN_DIRS:
        if isinstance(volume.get(kind), dict):
            return kind
    return None


def _token_spec(source: Mapping[str, Any]) -> TokenSpec:
    return TokenSpec(str(source.get("audience") or ""), int(source.get("expirationSeconds") or 3600))


def _projections(volume: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, source) for a file volume: itself, or each source of a projected volume."""
    kind = plugin_of(volume)
    if kind == "projected":
        out = []
        for source in volume["projected"].get("sources") or ():
            for sub in ("configMap", "secret", "downwardAPI", "serviceAccountToken"):
                if isinstance(source.get(sub), dict):
                    out.append((sub, source[sub]))
        return out
    return [(kind, volume[kind])] if kind in FILE_KINDS else []


def referenced_objects(volumes: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The (kind, name) of every Secret and ConfigMap the volumes read."""
    refs = set()
    for volume in volumes:
        for kind, source in _projections(volume):
            if kind == "configMap" and source.get("name"):
                refs.add(("ConfigMap", str(source["name"])))
            elif kind == "secret" and (source.get("secretName") or source.get("name")):
                refs.add(("Secret", str(source.get("secretName") or source.get("name"))))
    return refs


def token_specs(volumes: Iterable[Mapping[str, Any]]) -> set[TokenSpec]:
    """The service-account tokens the volumes project."""
    return {_token_spec(source) for volume in volumes for kind, source in _projections(volume)
            if kind == "serviceAccountToken"}


def _safe_path(volume: str, path: Any) -> str:
    text = str(path or "")
    parts = text.split("/")
    if not text or text.startswith("/") or ".." in parts or any(p.startswith("..") for p in parts):
        raise MountError(volume, f"invalid path {text!r}: must be relative and may not contain '..'")
    return posixpath.normpath(text)


def _mode(item: Mapping[str, Any], default: int) -> int:
    mode = item.get("mode")
    return int(mode) & 0o777 if isinstance(mode, int) and not isinstance(mode, bool) else default


def _key_files(volume: str, kind: str, source: Mapping[str, Any], objects: Objects, default: int) -> list[VolumeFile]:
    name = str(source.get("secretName") or source.get("name") or "") if kind == "Secret" else str(source.get("name"))
    data = objects.get((kind, name))
    optional = bool(source.get("optional"))
    label = kind.lower()
    if data is None:
        if optional:
            return []
        raise MountError(volume, f'{label} "{name}" not found')
    items = source.get("items")
    if not items:
        return [VolumeFile(_safe_path(volume, key), value, default) for key, value in sorted(data.items())]
    files = []
    for item in items:
        key = str(item.get("key"))
        if key not in data:
            if optional:
                continue
            raise MountError(volume, f"{label} references non-existent {label} key: {key}")
        files.append(VolumeFile(_safe_path(volume, item.get("path")), data[key], _mode(item, default)))
    return files


def _format_map(values: Mapping[str, Any]) -> bytes:
    """Labels or annotations as the downward API writes them: key="value" lines, sorted."""
    return "\n".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(values.items())).encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _container_resource(pod: Mapping[str, Any], ref: Mapping[str, Any], volume: str) -> str:
    """A resourceFieldRef's value, divided and rounded up as kubelet does; a missing limit is
    reported as the node's allocatable would be, which a process runtime has not: 0 is wrong,
    so such a field is refused."""
    containers = (pod.get("spec") or {}).get("containers") or []
    name = ref.get("containerName") or (containers[0].get("name") if len(containers) == 1 else None)
    container = next((c for c in containers if c.get("name") == name), None)
    if container is None:
        raise MountError(volume, f"resourceFieldRef: container {name!r} not found in the pod")
    resource = str(ref.get("resource") or "")
    section, _, what = resource.partition(".")
    if section not in ("limits", "requests") or what not in ("cpu", "memory", "ephemeral-storage"):
        raise MountError(volume, f"resourceFieldRef: unsupported resource {resource!r}")
    raw = ((container.get("resources") or {}).get(section) or {}).get(what)
    if raw is None and section == "limits":
        raw = ((container.get("resources") or {}).get("requests") or {}).get(what)
    value = parse_quantity(raw) if raw is not None else Decimal(0)
    divisor = parse_quantity(ref.get("divisor") or "1") or Decimal(1)
    if value is None:
        raise MountError(volume, f"resourceFieldRef: {resource} is not a quantity")
    return str(math.ceil(value / divisor))


def _downward_files(volume: str, source: Mapping[str, Any], pod: Mapping[str, Any], pod_ip: str, host_ip: str,
                    default: int) -> list[VolumeFile]:
    meta = pod.get("metadata") or {}
    files = []
    for item in source.get("items") or ():
        path = _safe_path(volume, item.get("path"))
        if isinstance(item.get("fieldRef"), dict):
            field = str(item["fieldRef"].get("fieldPath") or "")
            if field in ("metadata.labels", "metadata.annotations"):
                content = _format_map(meta.get(field.split(".")[1]) or {})
            else:
                value = field_value(field, pod, pod_ip, host_ip)
                if value is None:
                    raise MountError(volume, f"fieldRef {field} is not supported")
                content = value.encode()
        elif isinstance(item.get("resourceFieldRef"), dict):
            content = _container_resource(pod, item["resourceFieldRef"], volume).encode()
        else:
            raise MountError(volume, f"item {path}: needs fieldRef or resourceFieldRef")
        files.append(VolumeFile(path, content, _mode(item, default)))
    return files


def volume_files(volume: Mapping[str, Any], pod: Mapping[str, Any], objects: Objects,
                 tokens: Mapping[TokenSpec, str], pod_ip: str = "", host_ip: str = "") -> list[VolumeFile]:
    """The files of one configMap, secret, downwardAPI or projected volume (empty for others).
    `objects` holds the referenced Secrets and ConfigMaps, `tokens` the issued tokens."""
    name = str(volume.get("name"))
    kind = plugin_of(volume)
    if kind not in FILE_KINDS:
        return []
    default = _mode({"mode": volume[kind].get("defaultMode")}, DEFAULT_MODE)
    files: list[VolumeFile] = []
    for sub, source in _projections(volume):
        if sub == "configMap":
            files += _key_files(name, "ConfigMap", source, objects, default)
        elif sub == "secret":
            files += _key_files(name, "Secret", source, objects, default)
        elif sub == "downwardAPI":
            files += _downward_files(name, source, pod, pod_ip, host_ip, default)
        elif sub == "serviceAccountToken":
            token = tokens.get(_token_spec(source))
            if token is None:
                raise MountError(name, "no service account token issued yet")
            path = _safe_path(name, source.get("path") or "token")
            files.append(VolumeFile(path, token.encode(), _mode(source, default)))
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise MountError(name, f"two sources write the path {f.path!r}")
        seen.add(f.path)
    return files


def volume_dir(pod_dir: str, volume: Mapping[str, Any]) -> str | None:
    """Where the kubelet keeps a volume: <pod dir>/volumes/<plugin>/<name>."""
    kind = plugin_of(volume)
    if kind is None:
        return None
    return posixpath.join(pod_dir, "volumes", PLUGIN_DIRS[kind], str(volume.get("name")))


def bind_mounts(container: Mapping[str, Any], volumes: Iterable[Mapping[str, Any]], pod_dir: str) -> list[BindMount]:
    """The container's volumeMounts as bind mounts from the pod's volume directories, in
    mountPath order so a parent is mounted before what lies inside it. A mount of a volume
    the pod does not have (or this kubelet cannot set up) raises MountError."""
    dirs = {str(v.get("name")): volume_dir(pod_dir, v) for v in volumes}
    mounts = []
    for vm in container.get("volumeMounts") or ():
        name = str(vm.get("name"))
        source = dirs.get(name)
        if source is None:
            raise MountError(name, "the pod has no such volume, or its type is not supported by this kubelet")
        target = str(vm.get("mountPath") or "")
        if not target.startswith("/"):
            raise MountError(name, f"mountPath {target!r} is not absolute")
        if vm.get("subPath"):
            source = posixpath.join(source, _safe_path(name, vm["subPath"]))
        file_kind = any(isinstance(v.get(k), dict) for v in volumes if str(v.get("name")) == name for k in FILE_KINDS)
        mounts.append(BindMount(source, posixpath.normpath(target), bool(vm.get("readOnly")) or file_kind))
    return sorted(mounts, key=lambda m: m.target.count("/"))


def mount_prefix(mounts: Iterable[BindMount]) -> list[str]:
    """What to put before a container's argv so it runs in a private mount namespace of its
    own with `mounts` bound in: nothing mounted there propagates to the host, and the program
    replaces the shell (same pid). Empty without mounts."""
    mounts = list(mounts)
    if not mounts:
        return []
    steps = []
    for m in mounts:
        src, dst = shlex.quote(m.source), shlex.quote(m.target)
        # the mount point: a directory for a directory, an empty file for a file (subPath)
        steps.append(f"{{ [ -d {src} ] && mkdir -p {dst} || {{ mkdir -p \"$(dirname {dst})\" && touch -a {dst}; }}; }}")
        steps.append(f"mount --bind {src} {dst}")
        if m.read_only:
            steps.append(f"mount -o remount,bind,ro {shlex.quote(m.target)}")
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh"]
