"""Pure translation of API objects (plain dicts) into the ProxyState model.

Everything here is a pure function of its arguments: no I/O, no caches. Malformed or partial
objects never raise; the parts that cannot be used are left out (the apiserver validates, but
the agent must survive whatever a real cluster hands it).

Rules, as kube-proxy applies them:
- Services are skipped when headless (clusterIP "None" or ""), of type ExternalName, or
  labelled service.kubernetes.io/service-proxy-name or service.kubernetes.io/headless.
- One ServicePort per (Service, port), keyed "ns/name:portname".
- Endpoints come from every EndpointSlice labelled kubernetes.io/service-name=<svc> in the
  Service's namespace, matched to the ServicePort by port name and protocol; conditions default
  ready=true, serving=ready, terminating=false; only an endpoint's first address is used.
- The same ip:port in several slices is merged into one endpoint: slices are visited in name
  order and the first one wins, except that a ready copy replaces a not-ready one.

What every backend may assume of a ServicePort (this module guarantees it, whatever the object):
- cluster_ips, external_ips, load_balancer_ips and every endpoint's ip are IP addresses in
  canonical text (surrounding spaces trimmed, IPv4 octets with leading zeros read as decimal, as
  kube-proxy's ParseIPSloppy does); entries that do not parse are left out. A Service left
  without a usable cluster IP is not programmed.
- load_balancer_ips are the status.loadBalancer.ingress IPs whose ipMode is VIP (or unset).
- endpoints carry their slice's hints (forZones / forNodes names) for kproxy.agent.policy.
- load_balancer_source_ranges are CIDRs as network/prefix (host bits cleared, spaces trimmed);
  entries that do not parse as a CIDR are left out, as kube-proxy does.
- port, node_port, health_check_node_port and endpoint ports are in 1..65535 (0: none), the
  protocol is TCP, UDP or SCTP, session_affinity_timeout is in 1..86400 seconds.
- An endpoint's address is of its slice's addressType family.
What was left out is described by service_issues() / slice_issues(), for the proxier to report.
"""
from __future__ import annotations

import ipaddress
import socket
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Mapping

from kproxy.agent.state import Endpoint, ServicePort
from kproxy.api.meta import TRIGGER_TIME_ANNOTATION

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400  # the apiserver's limit for sessionAffinityConfig.clientIP.timeoutSeconds
PROTOCOLS = ("TCP", "UDP", "SCTP")

# One slice's usable content: ((port_name, protocol), endpoints) pairs, sorted.
SliceView = tuple[tuple[tuple[str, str], tuple[Endpoint, ...]], ...]


_EMPTY: Mapping[str, Any] = {}


def _dict(value: Any) -> Mapping[str, Any]:
    # API objects are decoded JSON, so dict (not the slow typing.Mapping check) is enough
    return value if isinstance(value, dict) else _EMPTY


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def clean_ip(value: Any) -> str | None:
    """`value` as a canonical IP address text, or None when it is not one (see module doc)."""
    if not isinstance(value, str):
        return None
    try:  # the common case, a canonical IPv4 address, without the ipaddress module
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, value)) == value:
            return value
    except OSError:
        pass
    return _clean_ip_text(value)


@lru_cache(maxsize=4096)
def _clean_ip_text(value: str) -> str | None:
    text = value.strip()
    if "." in text and ":" not in text:  # IPv4: "010.1.2.3" is 10.1.2.3, as ParseIPSloppy reads it
        octets = text.split(".")
        if len(octets) == 4 and all(o.isdigit() and o.isascii() for o in octets):
            text = ".".join(str(int(o)) for o in octets)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def clean_cidr(value: Any) -> str | None:
    """`value` as a canonical "network/prefix" text, or None when it is not a CIDR."""
    return _clean_cidr_text(value) if isinstance(value, str) else None


@lru_cache(maxsize=4096)  # a cluster's source ranges are few and repeat across Services
def _clean_cidr_text(value: str) -> str | None:
    if "/" not in value:
        return None
    address, _, prefix = value.strip().partition("/")
    ip = clean_ip(address)
    if ip is None or not (prefix.isdigit() and prefix.isascii()):
        return None
    try:
        return str(ipaddress.ip_network(f"{ip}/{int(prefix)}", strict=False))
    except ValueError:
        return None


def _clean_all(values: Any, clean: Any) -> tuple[str, ...]:
    """The usable, distinct entries of a list field, cleaned, in order."""
    out: dict[str, None] = {}
    for v in _list(values):
        c = clean(v)
        if c is not None:
            out[c] = None
    return tuple(out)


def _bad_entries(values: Any, clean: Any, field: str, what: str) -> list[str]:
    return [f"{field}[{i}] {v!r} is not {what}" for i, v in enumerate(_list(values))
            if clean(v) is None and v not in ("", "None")]


def object_key(obj: Mapping[str, Any]) -> str:
    """"namespace/name" (or "name" when cluster-scoped), the informer cache key."""
    meta = _dict(obj.get("metadata"))
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def is_proxied(svc: Mapping[str, Any] | None) -> bool:
    """True when kube-proxy would program this Service."""
    if not svc:
        return False
    labels = _dict(_dict(svc.get("metadata")).get("labels"))
    if SERVICE_PROXY_NAME_LABEL in labels or HEADLESS_LABEL in labels:
        return False
    spec = _dict(svc.get("spec"))
    if spec.get("type") == "ExternalName":
        return False
    cluster_ip = spec.get("clusterIP")
    return isinstance(cluster_ip, str) and cluster_ip not in ("", "None")


def _port_number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536 else 0


def service_ports(svc: Mapping[str, Any] | None) -> tuple[ServicePort, ...]:
    """The ServicePorts of one Service, without endpoints, sorted by key; () when not proxied."""
    if not is_proxied(svc):
        return ()
    assert svc is not None
    meta = _dict(svc.get("metadata"))
    spec = _dict(svc.get("spec"))
    status = _dict(svc.get("status"))
    svc_type = spec.get("type") or "ClusterIP"
    cluster_ips = _cluster_ips(spec)
    if not cluster_ips:
        return ()
    external_ips = _clean_all(spec.get("externalIPs"), clean_ip)
    lb_ips: tuple[str, ...] = ()
    if svc_type == "LoadBalancer":
        lb_ips = _clean_all(_ingress_ips(status), clean_ip)
    source_ranges = _clean_all(spec.get("loadBalancerSourceRanges"), clean_cidr)
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
        affinity = timeout if _valid_affinity_timeout(timeout) else DEFAULT_AFFINITY_TIMEOUT
    externally_accessible = svc_type in ("NodePort", "LoadBalancer") or bool(external_ips)
    external_local = externally_accessible and spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    health_port = _port_number(spec.get("healthCheckNodePort")) if external_local else 0
    out: dict[str, ServicePort] = {}
    for raw in map(_dict, _list(spec.get("ports"))):
        port = _port_number(raw.get("port"))
        protocol = raw.get("protocol") or "TCP"
        if not port or protocol not in PROTOCOLS:
            continue
        node_port = _port_number(raw.get("nodePort")) if svc_type in ("NodePort", "LoadBalancer") else 0
        sp = ServicePort(
            namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
            port_name=str(raw.get("name") or ""), protocol=protocol, port=port,
            cluster_ips=cluster_ips, node_port=node_port, external_ips=external_ips,
            load_balancer_ips=lb_ips, load_balancer_source_ranges=source_ranges,
            session_affinity_timeout=affinity, external_policy_local=external_local,
            internal_policy_local=internal_local, health_check_node_port=health_port,
        )
        out.setdefault(sp.key, sp)
    return tuple(out[k] for k in sorted(out))


def _cluster_ips(spec: Mapping[str, Any]) -> tuple[str, ...]:
    # clusterIPs lists clusterIP first; older objects only have clusterIP
    listed = _list(spec.get("clusterIPs")) or [spec.get("clusterIP")]
    return _clean_all(listed, clean_ip)


def _ingress_ips(status: Mapping[str, Any]) -> list[Any]:
    """The ingress IPs this node programs: ipMode VIP (the default). An ipMode Proxy entry's
    traffic must reach the load balancer, which proxies it, so kube-proxy leaves that IP alone
    (LoadBalancerIPMode; any value but VIP counts as not VIP, as upstream's IsVIPMode says)."""
    return [i.get("ip") for i in map(_dict, _list(_dict(status.get("loadBalancer")).get("ingress")))
            if i.get("ip") and i.get("ipMode") in (None, "VIP")]


def _valid_affinity_timeout(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_AFFINITY_TIMEOUT


def service_issues(svc: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Why service_ports() leaves parts of a proxied Service out (empty when it uses all of it),
    one sentence per dropped value, naming the field."""
    if not is_proxied(svc):
        return ()
    assert svc is not None
    spec = _dict(svc.get("spec"))
    issues = _bad_entries(_list(spec.get("clusterIPs")) or [spec.get("clusterIP")], clean_ip,
                          "spec.clusterIPs", "an IP address")
    if not _cluster_ips(spec):
        issues.append("no usable cluster IP: the Service is not programmed")
    issues += _bad_entries(spec.get("externalIPs"), clean_ip, "spec.externalIPs", "an IP address")
    issues += _bad_entries(spec.get("loadBalancerSourceRanges"), clean_cidr, "spec.loadBalancerSourceRanges",
                           "a CIDR")
    if spec.get("type") == "LoadBalancer":
        issues += _bad_entries(_ingress_ips(_dict(svc.get("status"))), clean_ip,
                               "status.loadBalancer.ingress[].ip", "an IP address")
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
        if timeout is not None and not _valid_affinity_timeout(timeout):
            issues.append(f"sessionAffinityConfig.clientIP.timeoutSeconds {timeout!r} is not in "
                          f"1..{MAX_AFFINITY_TIMEOUT}: using {DEFAULT_AFFINITY_TIMEOUT}")
    for i, raw in enumerate(map(_dict, _list(spec.get("ports")))):
        if not _port_number(raw.get("port")):
            issues.append(f"spec.ports[{i}].port {raw.get('port')!r} is not a port number: port left out")
        elif (raw.get("protocol") or "TCP") not in PROTOCOLS:
            issues.append(f"spec.ports[{i}].protocol {raw.get('protocol')!r} is not TCP, UDP or SCTP: port left out")
    return tuple(issues)


def slice_service_key(slc: Mapping[str, Any] | None) -> str | None:
    """"ns/service" the slice belongs to, from its kubernetes.io/service-name label."""
    if not slc:
        return None
    meta = _dict(slc.get("metadata"))
    name = _dict(meta.get("labels")).get(SERVICE_NAME_LABEL)
    if not name or not meta.get("namespace"):
        return None
    return f"{meta['namespace']}/{name}"


def _condition(conditions: Mapping[str, Any], name: str, default: bool) -> bool:
    value = conditions.get(name)
    return value if isinstance(value, bool) else default


def slice_view(slc: Mapping[str, Any] | None, node_name: str) -> SliceView:
    """The endpoints one slice contributes per (port name, protocol); () for unusable slices."""
    if not slc or slc.get("addressType") not in (None, "IPv4", "IPv6"):
        return ()
    version = _ADDRESS_VERSIONS.get(slc.get("addressType"))
    per_port: dict[tuple[str, str], dict[tuple[str, int], Endpoint]] = {}
    endpoints = []
    for raw in map(_dict, _list(slc.get("endpoints"))):
        address = _endpoint_address(raw, version)
        if address is None:
            continue
        cond = _dict(raw.get("conditions"))
        ready = _condition(cond, "ready", True)
        serving = _condition(cond, "serving", ready)
        terminating = _condition(cond, "terminating", False)
        node = raw.get("nodeName") if isinstance(raw.get("nodeName"), str) else None
        zone = raw.get("zone") if isinstance(raw.get("zone"), str) else None
        endpoints.append((address, ready, serving, terminating, node, zone, _hints(raw)))
    for port in map(_dict, _list(slc.get("ports"))):
        number = _port_number(port.get("port"))
        protocol = port.get("protocol") or "TCP"
        if not number or protocol not in PROTOCOLS:
            continue
        key = (str(port.get("name") or ""), protocol)
        eps = per_port.setdefault(key, {})
        for ip, ready, serving, terminating, node, zone, (zone_hints, node_hints) in endpoints:
            have = eps.get((ip, number))
            if have is None or (ready and not have.ready):  # same duplicate rule as merge_endpoints
                eps[(ip, number)] = Endpoint(ip=ip, port=number, ready=ready, serving=serving,
                                             terminating=terminating, node_name=node, zone=zone,
                                             is_local=node is not None and node == node_name,
                                             zone_hints=zone_hints, node_hints=node_hints)
    return tuple((k, tuple(sorted(v.values(), key=_endpoint_order))) for k, v in sorted(per_port.items()))


_ADDRESS_VERSIONS: dict[str | None, int] = {"IPv4": 4, "IPv6": 6}  # by a slice's addressType


def _hint_names(value: Any) -> tuple[str, ...]:
    return tuple(sorted({n for n in (_dict(h).get("name") for h in _list(value)) if isinstance(n, str) and n}))


def _hints(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The endpoint's (hints.forZones, hints.forNodes) names, sorted; unusable entries left out."""
    hints = _dict(raw.get("hints"))
    if not hints:
        return (), ()
    return _hint_names(hints.get("forZones")), _hint_names(hints.get("forNodes"))


def _endpoint_address(raw: Mapping[str, Any], version: int | None) -> str | None:
    """The endpoint's first address, cleaned; None when it is unusable for the slice's family."""
    addresses = _list(raw.get("addresses"))
    ip = clean_ip(addresses[0]) if addresses else None
    if ip is None or (version is not None and (6 if ":" in ip else 4) != version):
        return None
    return ip


def slice_issues(slc: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Why slice_view() leaves endpoints or ports of a slice out (empty when it uses all of it)."""
    if not slc:
        return ()
    if slc.get("addressType") not in (None, "IPv4", "IPv6"):
        return ()  # FQDN slices are not for proxies: nothing is wrong with them
    version = _ADDRESS_VERSIONS.get(slc.get("addressType"))
    issues = []
    for i, raw in enumerate(map(_dict, _list(slc.get("endpoints")))):
        if _endpoint_address(raw, version) is None:
            issues.append(f"endpoints[{i}].addresses {_list(raw.get('addresses'))[:1]!r} is not an "
                          f"{slc.get('addressType') or 'IP'} address: endpoint left out")
    for i, port in enumerate(map(_dict, _list(slc.get("ports")))):
        if not _port_number(port.get("port")) or (port.get("protocol") or "TCP") not in PROTOCOLS:
            issues.append(f"ports[{i}] {port.get('port')!r}/{port.get('protocol')!r} is not a usable port: "
                          f"left out")
    return tuple(issues)


def _endpoint_order(e: Endpoint) -> tuple[str, int]:
    # (ip, port) is unique within one list, so this equals Endpoint's own ordering, faster
    return e.ip, e.port


def merge_endpoints(views: Iterable[SliceView], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """Endpoints for one ServicePort from slice views given in slice-name order (see module doc
    for the duplicate rule). Sorted."""
    want = (port_name, protocol)
    lists = [eps for view in views for key, eps in view if key == want]
    if not lists:
        return ()
    if len(lists) == 1:
        return lists[0]  # one slice: already de-duplicated and sorted by slice_view()
    merged: dict[tuple[str, int], Endpoint] = {}
    for eps in lists:
        for ep in eps:
            have = merged.get((ep.ip, ep.port))
            if have is None or (ep.ready and not have.ready):
                merged[(ep.ip, ep.port)] = ep
    return tuple(sorted(merged.values(), key=_endpoint_order))


def _with_endpoints(sp: ServicePort, endpoints: tuple[Endpoint, ...]) -> ServicePort:
    # dataclasses.replace() (and copy.copy) cost tens of microseconds per call, which dominated
    # a 10k-Service build; copying the instance dict keeps every field and is completed before
    # anyone sees the new object.
    out = object.__new__(ServicePort)
    out.__dict__.update(sp.__dict__)
    out.__dict__["endpoints"] = endpoints
    return out


def attach_endpoints(ports: Iterable[ServicePort], views: Iterable[SliceView]) -> dict[str, ServicePort]:
    """`ports` (from service_ports()) with their endpoints merged from `views` (the Service's
    slices' views in slice-name order), keyed by ServicePort.key."""
    views = list(views)
    return {sp.key: _with_endpoints(sp, merge_endpoints(views, sp.port_name, sp.protocol))
            for sp in ports}


def build_service_ports(svc: Mapping[str, Any] | None, views: Iterable[SliceView]) -> dict[str, ServicePort]:
    """All ServicePorts of one Service with their endpoints; `views` are the Service's slices'
    views in slice-name order."""
    return attach_endpoints(service_ports(svc), views)


def node_pod_cidrs(node: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The Node's spec.podCIDRs (else spec.podCIDR): valid CIDRs only, in order."""
    spec = _dict(_dict(node).get("spec")) if node else {}
    raw = _list(spec.get("podCIDRs")) or [spec.get("podCIDR")]
    out: list[str] = []
    for cidr in raw:
        if not isinstance(cidr, str):
            continue
        try:
            text = str(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            continue
        if text not in out:
            out.append(text)
    return tuple(out)


def node_ips(node: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The node's addresses for NodePort: its InternalIPs, then its ExternalIPs."""
    if not node:
        return ()
    addresses = [_dict(a) for a in _list(_dict(node.get("status")).get("addresses"))]
    out: list[str] = []
    for kind in ("InternalIP", "ExternalIP"):
        for a in addresses:
            ip = clean_ip(a.get("address"))
            if a.get("type") == kind and ip and ip not in out:
                out.append(ip)
    return tuple(out)


def node_zone(node: Mapping[str, Any] | None) -> str:
    """The Node's topology.kubernetes.io/zone label ("" when it has none)."""
    zone = _dict(_dict(_dict(node).get("metadata")).get("labels")).get(ZONE_LABEL) if node else None
    return zone if isinstance(zone, str) else ""


def node_eligible(node: Mapping[str, Any] | None) -> bool:
    """False when the Node is being deleted or is tainted for deletion by the autoscaler."""
    if not node:
        return True  # unknown node: kube-proxy stays eligible
    if _dict(node.get("metadata")).get("deletionTimestamp"):
        return False
    taints = _list(_dict(node.get("spec")).get("taints"))
    return not any(_dict(t).get("key") == "ToBeDeletedByClusterAutoscaler" for t in taints)


def trigger_time(slc: Mapping[str, Any] | None) -> float | None:
    """The slice's last-change-trigger-time annotation as a Unix timestamp, if present."""
    if not slc:
        return None
    value = _dict(_dict(slc.get("metadata")).get("annotations")).get(TRIGGER_TIME_ANNOTATION)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
