"""What a container runs, as pure functions: the built-in images, the argv (entrypoint/cmd
overridden by command/args, with $(VAR) expanded), and the environment kubelet gives it
(service links, env values, downward API fields).
"""
from __future__ import annotations

import re
import sys
from typing import Any, Iterable, Mapping

ECHO_IMAGE = "kproxy.local/echo"
BASE_IMAGE = "kproxy.local/base"
# image -> (entrypoint, cmd), as an image's ENTRYPOINT and CMD
BUILTIN_IMAGES: dict[str, tuple[list[str], list[str]]] = {
    ECHO_IMAGE: ([sys.executable, "-m", "kproxy.lab.echo"], []),
    BASE_IMAGE: ([], ["/bin/sh"]),
}

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ImageError(ValueError):
    """The image is not one the process runtime has."""


def image_name(image: str) -> str:
    """The image without its tag or digest ("kproxy.local/echo:1.0" -> "kproxy.local/echo")."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, $$ is a literal $, and
    anything else stays as written."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR_REF.sub(sub, text)


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The process to run: command replaces the image's entrypoint, args its cmd (args alone
    keep the entrypoint). Raises ImageError for an image the runtime does not have."""
    image = str(container.get("image") or "")
    builtin = BUILTIN_IMAGES.get(image_name(image))
    if builtin is None:
        raise ImageError(f'image "{image}" not found: the process runtime has only {", ".join(sorted(BUILTIN_IMAGES))}')
    entrypoint, cmd = builtin
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [expand(str(c), env) for c in command] + [expand(str(a), env) for a in args or ()]
    else:
        argv = list(entrypoint) + ([expand(str(a), env) for a in args] if args else list(cmd))
    if not argv:
        raise ImageError(f'image "{image}" has no entrypoint: give the container a command')
    return argv


def _env_name(service_name: str) -> str:
    return service_name.upper().replace("-", "_")


def service_env(services: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The variables kubelet injects for each Service with a ClusterIP (its own namespace's,
    and `kubernetes` from default): NAME_SERVICE_HOST/_PORT, NAME_SERVICE_PORT_<PORTNAME> and
    the Docker-link style NAME_PORT..."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = _env_name(str((svc.get("metadata") or {}).get("name")))
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{name}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port.get("port"))
        first = ports[0]
        proto = str(first.get("protocol") or "TCP")
        env[f"{name}_PORT"] = f"{proto.lower()}://{ip}:{first.get('port')}"
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            prefix = f"{name}_PORT_{port.get('port')}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{ip}:{port.get('port')}"
            env[prefix + "_PROTO"] = proto.lower()
            env[prefix + "_PORT"] = str(port.get("port"))
            env[prefix + "_ADDR"] = ip
    return env


def field_value(path: str, pod: Mapping[str, Any], pod_ip: str, host_ip: str) -> str | None:
    """A downward API fieldRef value, None for a field kubelet does not offer."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    return None


class EnvError(ValueError):
    """An env entry kubelet cannot resolve (the container does not start)."""


# (kind, name) of a Secret or ConfigMap -> its data as text, None when it does not exist
Sources = Mapping[tuple[str, str], "Mapping[str, str] | None"]
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def referenced_sources(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The Secrets and ConfigMaps the container's env and envFrom name."""
    refs = set()
    for entry in container.get("env") or ():
        value_from = entry.get("valueFrom") or {}
        for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            if isinstance(value_from.get(key), dict) and value_from[key].get("name"):
                refs.add((kind, str(value_from[key]["name"])))
    for source in container.get("envFrom") or ():
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if isinstance(source.get(key), dict) and source[key].get("name"):
                refs.add((kind, str(source[key]["name"])))
    return refs


def _key_ref(entry_name: str, ref: Mapping[str, Any], kind: str, sources: Sources) -> str | None:
    data = sources.get((kind, str(ref.get("name"))))
    key = str(ref.get("key"))
    if data is None or key not in data:
        if ref.get("optional"):
            return None
        if data is None:
            what = f'{kind.lower()} "{ref.get("name")}" not found'
        else:
            what = f"couldn't find key {key} in {kind} {ref.get('name')}"
        raise EnvError(f"env {entry_name}: {what}")
    return data[key]


def container_env(container: Mapping[str, Any], pod: Mapping[str, Any], services: Iterable[Mapping[str, Any]],
                  pod_ip: str, host_ip: str, sources: Sources | None = None) -> dict[str, str]:
    """The container's environment: PATH, HOSTNAME (the pod name), the Service variables
    (unless enableServiceLinks is false; only `kubernetes` then), envFrom (Secrets and
    ConfigMaps, keys that are not valid names skipped), then the container's env in order, each
    value expanded against the ones before it. `sources` holds the referenced Secrets' and
    ConfigMaps' data (referenced_sources)."""
    sources = sources or {}
    spec = pod.get("spec") or {}
    svcs = list(services)
    if spec.get("enableServiceLinks") is False:
        svcs = [s for s in svcs if (s.get("metadata") or {}).get("name") == "kubernetes"
                and (s.get("metadata") or {}).get("namespace") == "default"]
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOSTNAME": str((pod.get("metadata") or {}).get("name") or "")}
    env.update(service_env(svcs))
    for source in container.get("envFrom") or ():
        for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            ref = source.get(key)
            if not isinstance(ref, dict):
                continue
            data = sources.get((kind, str(ref.get("name"))))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'envFrom: {kind.lower()} "{ref.get("name")}" not found')
            prefix = str(source.get("prefix") or "")
            env.update({prefix + k: v for k, v in data.items() if _ENV_NAME.match(prefix + k)})
    for entry in container.get("env") or ():
        name = entry.get("name")
        if not name:
            continue
        if "valueFrom" in entry:
            value_from = entry.get("valueFrom") or {}
            value: str | None
            if value_from.get("fieldRef"):
                value = field_value(str(value_from["fieldRef"].get("fieldPath")), pod, pod_ip, host_ip)
                if value is None:
                    raise EnvError(f"env {name}: fieldRef {value_from['fieldRef'].get('fieldPath')} is not supported")
            elif value_from.get("secretKeyRef"):
                value = _key_ref(name, value_from["secretKeyRef"], "Secret", sources)
            elif value_from.get("configMapKeyRef"):
                value = _key_ref(name, value_from["configMapKeyRef"], "ConfigMap", sources)
            else:
                raise EnvError(f"env {name}: valueFrom needs fieldRef, secretKeyRef or configMapKeyRef")
            if value is not None:
                env[name] = value
        else:
            env[name] = expand(str(entry.get("value") or ""), env)
    return env
