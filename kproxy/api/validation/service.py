"""Service validation (ValidateService / ValidateServiceUpdate)."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.api import names
from kproxy.api.validation.common import (
    check_conditions, check_enum, check_labels, check_port, check_port_num_or_name, check_protocol, ip_family,
)
from kproxy.api.validation.errors import FieldErrors

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
CLIENT_IP_TIMEOUT_MAX = 86400
KUBELET_PORT = 10250


def _externally_accessible(svc_type: str, external_ips: list[Any]) -> bool:
    return svc_type in ("LoadBalancer", "NodePort") or (svc_type == "ClusterIP" and bool(external_ips))


def _effective_cluster_ips(e: FieldErrors, spec: dict[str, Any]) -> list[str]:
    cluster_ip = e.string(spec.get("clusterIP"), "spec.clusterIP")
    ips = [e.string(v, f"spec.clusterIPs[{i}]") for i, v in enumerate(e.list(spec.get("clusterIPs"), "spec.clusterIPs"))]
    if not ips and cluster_ip:
        ips = [cluster_ip]
    return ips


def _validate_service_ports(e: FieldErrors, spec: dict[str, Any], svc_type: str, headless: bool) -> None:
    ports = e.list(spec.get("ports"), "spec.ports")
    if not ports and not headless and svc_type != "ExternalName":
        e.required("spec.ports")
    require_name = len(ports) > 1
    seen_names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        p = e.map(p, path)
        name = e.string(p.get("name"), f"{path}.name")
        if not name:
            if require_name:
                e.required(f"{path}.name")
        else:
            e.invalid_all(f"{path}.name", name, names.check_dns1123_label(name))
            if name in seen_names:
                e.duplicate(f"{path}.name", name)
            seen_names.add(name)
        port = check_port(e, p.get("port"), f"{path}.port")
        if port == KUBELET_PORT and svc_type == "LoadBalancer":
            e.invalid(f"{path}.port", port, f"may not expose port {KUBELET_PORT} externally since it is used by kubelet")
        check_protocol(e, p.get("protocol"), f"{path}.protocol")
        check_port_num_or_name(e, p.get("targetPort"), f"{path}.targetPort")
        app_proto = e.string(p.get("appProtocol"), f"{path}.appProtocol")
        if app_proto:
            e.invalid_all(f"{path}.appProtocol", app_proto, names.check_qualified_name(app_proto))
        node_port = e.integer(p.get("nodePort"), f"{path}.nodePort")
        protocol = p.get("protocol") if isinstance(p.get("protocol"), str) else ""
        if node_port:
            if svc_type == "ClusterIP":
                e.forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'")
            elif not 0 <= node_port <= 65535:
                e.invalid(f"{path}.nodePort", node_port, names.PORT_RANGE_MSG)
            if (protocol, node_port) in seen_node_ports:
                e.duplicate(f"{path}.nodePort", node_port)
            seen_node_ports.add((protocol, node_port))
        if port is not None:
            if (protocol, port) in seen_ports:
                e.duplicate(path, {"port": port, "protocol": protocol})
            seen_ports.add((protocol, port))


def _validate_service_ips(e: FieldErrors, spec: dict[str, Any], svc_type: str) -> None:
    if svc_type == "ExternalName":
        families = [e.string(f, f"spec.ipFamilies[{i}]")
                    for i, f in enumerate(e.list(spec.get("ipFamilies"), "spec.ipFamilies"))]
        policy = check_enum(e, spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy", IP_FAMILY_POLICIES, required=False)
        ips = _effective_cluster_ips(e, spec)
        if spec.get("clusterIP"):
            e.forbidden("spec.clusterIP", "may not be set for ExternalName services")
        elif ips:
            e.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
        if families:
            e.forbidden("spec.ipFamilies", "may not be set for ExternalName services")
        if policy:
            e.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
        return
    families, ips, policy = _validate_cluster_ips_standalone(e, spec)
    if policy == "SingleStack":
        if len(families) > 1:
            e.invalid("spec.ipFamilies", families, "must contain at most one entry when `ipFamilyPolicy` is 'SingleStack'")
        if len(ips) > 1:
            e.invalid("spec.clusterIPs", ips, "must contain at most one entry when `ipFamilyPolicy` is 'SingleStack'")
    if policy == "RequireDualStack" and families and len(families) < 2 and ips and ips[0] != "None":
        e.invalid("spec.ipFamilies", families, "must contain two entries when `ipFamilyPolicy` is 'RequireDualStack'")


def validate_cluster_ips_related_fields(e: FieldErrors, spec: dict[str, Any]) -> None:
    """clusterIP(s), ipFamilies and ipFamilyPolicy each on their own and against each other,
    without the policy's count rules: upstream's ValidateServiceClusterIPsRelatedFields, which
    the apiserver runs before it defaults the families (kproxy.apiserver.service_families)."""
    _validate_cluster_ips_standalone(e, spec)


def _validate_cluster_ips_standalone(e: FieldErrors, spec: dict[str, Any]) -> tuple[list[str], list[str], str]:
    ips = _effective_cluster_ips(e, spec)
    families = [e.string(f, f"spec.ipFamilies[{i}]") for i, f in enumerate(e.list(spec.get("ipFamilies"), "spec.ipFamilies"))]
    policy = check_enum(e, spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy", IP_FAMILY_POLICIES, required=False)
    svc_type = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") if isinstance(spec.get("clusterIP"), str) else ""
    if cluster_ip and spec.get("clusterIPs") and ips and ips[0] != cluster_ip:
        e.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`")
    if len(ips) > 2:
        e.invalid("spec.clusterIPs", ips, "may only hold up to 2 values")
    for i, ip in enumerate(ips):
        path = f"spec.clusterIPs[{i}]"
        if i == 0 and ip == "None":
            continue
        if ip == "None":
            e.invalid(path, ip, "must be a valid IP address")
        elif names.parse_ip(ip) is None:
            e.invalid(path, ip, "must be empty, 'None', or a valid IP address")
    if ips and ips[0] == "None" and svc_type in ("LoadBalancer", "NodePort"):
        e.invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {svc_type} services")
    if ips and ips[0] == "None" and len(ips) > 1:
        e.invalid("spec.clusterIPs", ips, "must not have more than one value when the first value is `None`")
    fams = [ip_family(ip) for ip in ips if ip != "None"]
    if len(fams) == 2 and fams[0] is not None and fams[0] == fams[1]:
        e.invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family")
    if len(families) > 2:
        e.invalid("spec.ipFamilies", families, "may specify no more than one IP for each IP family")
    seen: set[str] = set()
    for i, fam in enumerate(families):
        if fam not in IP_FAMILIES:
            e.not_supported(f"spec.ipFamilies[{i}]", fam, IP_FAMILIES)
        elif fam in seen:
            e.duplicate(f"spec.ipFamilies[{i}]", fam)
        seen.add(fam)
    for i, ip in enumerate(ips):
        fam = ip_family(ip)
        if fam and i < len(families) and families[i] in IP_FAMILIES and families[i] != fam:
            e.invalid(f"spec.clusterIPs[{i}]", ip,
                      f"expected an {families[i]} value as indicated by `ipFamilies[{i}]`")
    return families, ips, policy


def validate_service(e: FieldErrors, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = e.map(obj.get("spec"), "spec")
    svc_type = check_enum(e, spec.get("type"), "spec.type", SERVICE_TYPES, required=True)
    ips = _effective_cluster_ips(FieldErrors(), spec)
    headless = bool(ips) and ips[0] == "None"
    _validate_service_ports(e, spec, svc_type, headless)
    _validate_service_ips(e, spec, svc_type)

    if svc_type == "ExternalName":
        ext = e.string(spec.get("externalName"), "spec.externalName")
        if not ext:
            e.required("spec.externalName")
        else:
            e.invalid_all("spec.externalName", ext, names.check_dns1123_subdomain(ext.rstrip(".")))

    selector = e.string_map(spec.get("selector"), "spec.selector")
    check_labels(e, selector, "spec.selector")

    affinity = check_enum(e, spec.get("sessionAffinity"), "spec.sessionAffinity", SESSION_AFFINITIES, required=True)
    affinity_config = spec.get("sessionAffinityConfig")
    if affinity == "ClientIP":
        cfg = e.map(affinity_config, "spec.sessionAffinityConfig")
        client_ip = e.map(cfg.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
        timeout_path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
        timeout = e.integer(client_ip.get("timeoutSeconds"), timeout_path)
        if timeout is None:
            if client_ip.get("timeoutSeconds") is None:
                e.required(timeout_path)
        elif not 0 < timeout <= CLIENT_IP_TIMEOUT_MAX:
            e.invalid(timeout_path, timeout, f"must be greater than 0 and less than {CLIENT_IP_TIMEOUT_MAX}")
    elif affinity == "None" and affinity_config:
        e.invalid("spec.sessionAffinityConfig", affinity_config,
                  "must not be set when session affinity is None")

    external_ips = e.list(spec.get("externalIPs"), "spec.externalIPs")
    for i, ip in enumerate(external_ips):
        path = f"spec.externalIPs[{i}]"
        ip = e.string(ip, path)
        e.invalid_all(path, ip, names.check_non_special_ip(ip))

    etp = spec.get("externalTrafficPolicy")
    if etp not in (None, ""):
        if not _externally_accessible(svc_type, external_ips):
            e.invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services")
        else:
            check_enum(e, etp, "spec.externalTrafficPolicy", TRAFFIC_POLICIES, required=False)
    elif svc_type in ("LoadBalancer", "NodePort"):
        e.required("spec.externalTrafficPolicy")

    check_enum(e, spec.get("internalTrafficPolicy"), "spec.internalTrafficPolicy", TRAFFIC_POLICIES,
                required=svc_type != "ExternalName")

    hc = e.integer(spec.get("healthCheckNodePort"), "spec.healthCheckNodePort")
    if hc:
        if svc_type != "LoadBalancer" or etp != "Local":
            e.invalid("spec.healthCheckNodePort", hc,
                      "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'")
        elif not 0 < hc <= 65535:
            e.invalid("spec.healthCheckNodePort", hc, names.PORT_RANGE_MSG)

    ranges = e.list(spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges")
    if ranges and svc_type != "LoadBalancer":
        e.forbidden("spec.loadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'")
    for i, cidr in enumerate(ranges):
        path = f"spec.loadBalancerSourceRanges[{i}]"
        cidr = e.string(cidr, path)
        if names.check_cidr(cidr.strip()):
            e.invalid(path, cidr, "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ")
    lb_ip = e.string(spec.get("loadBalancerIP"), "spec.loadBalancerIP")
    if lb_ip:
        if svc_type != "LoadBalancer":
            e.forbidden("spec.loadBalancerIP", "may only be used when `type` is 'LoadBalancer'")
        else:
            e.invalid_all("spec.loadBalancerIP", lb_ip, names.check_ip(lb_ip))
    if spec.get("allocateLoadBalancerNodePorts") is not None:
        e.boolean(spec.get("allocateLoadBalancerNodePorts"), "spec.allocateLoadBalancerNodePorts")
        if svc_type != "LoadBalancer":
            e.forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'")
    e.boolean(spec.get("publishNotReadyAddresses"), "spec.publishNotReadyAddresses")
    lb_class = e.string(spec.get("loadBalancerClass"), "spec.loadBalancerClass")
    if lb_class:
        if svc_type != "LoadBalancer":
            e.forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'")
        e.invalid_all("spec.loadBalancerClass", lb_class, names.check_qualified_name(lb_class))

    status = e.map(obj.get("status"), "status")
    lb = e.map(status.get("loadBalancer"), "status.loadBalancer")
    for i, ing in enumerate(e.list(lb.get("ingress"), "status.loadBalancer.ingress")):
        path = f"status.loadBalancer.ingress[{i}]"
        ing = e.map(ing, path)
        ip = e.string(ing.get("ip"), f"{path}.ip")
        if ip:
            e.invalid_all(f"{path}.ip", ip, names.check_ip(ip))
        host = e.string(ing.get("hostname"), f"{path}.hostname")
        if host:
            e.invalid_all(f"{path}.hostname", host, names.check_dns1123_subdomain(host))
    check_conditions(e, e.list(status.get("conditions"), "status.conditions"), "status.conditions")

    if old is not None:
        _validate_service_update(e, spec, e.map(old.get("spec"), "spec") if isinstance(old.get("spec"), Mapping) else {})


def _headless(spec: dict[str, Any]) -> bool:
    return spec.get("clusterIPs") == ["None"]


def _validate_service_update(e: FieldErrors, spec: dict[str, Any], old_spec: dict[str, Any]) -> None:
    """Upgrade (add the secondary clusterIP / family) and downgrade (release it, only with
    ipFamilyPolicy SingleStack); the primary clusterIP and family never change, except to or
    from ExternalName: upstream's validateUpgradeDowngradeClusterIPs / ...IPFamilies."""
    if "ExternalName" in (spec.get("type"), old_spec.get("type")):
        return
    new_ips = _effective_cluster_ips(FieldErrors(), spec)
    old_ips = _effective_cluster_ips(FieldErrors(), old_spec)
    policy = spec.get("ipFamilyPolicy")
    if not (_headless(spec) and _headless(old_spec)):
        if len(old_ips) == len(new_ips):
            for i, old_ip in enumerate(old_ips):
                if new_ips[i] != old_ip:
                    e.invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set")
        elif len(old_ips) > len(new_ips):
            if not new_ips:
                e.invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset")
            elif new_ips[0] != old_ips[0]:
                e.invalid("spec.clusterIPs[0]", new_ips, "may not change once set")
            if len(new_ips) == 1 and policy != "SingleStack":
                e.invalid("spec.ipFamilyPolicy", policy,
                          "must be set to 'SingleStack' when releasing the secondary clusterIP")
        elif old_ips and new_ips[0] != old_ips[0]:
            e.invalid("spec.clusterIPs[0]", new_ips, "may not change once set")
    if _headless(spec) or _headless(old_spec):
        return  # headless Services may change families, and so may a change to or from headless
    old_fams = old_spec.get("ipFamilies") if isinstance(old_spec.get("ipFamilies"), list) else []
    new_fams = spec.get("ipFamilies") if isinstance(spec.get("ipFamilies"), list) else []
    if len(old_fams) == len(new_fams):
        if old_fams != new_fams:
            e.invalid("spec.ipFamilies[0]", new_fams, "may not change once set")
    elif len(old_fams) > len(new_fams):
        if not new_ips:
            e.invalid("spec.ipFamilies[0]", new_fams, "primary ipFamily can not be unset")
        if new_fams and new_fams[0] != old_fams[0]:
            e.invalid("spec.ipFamilies[0]", new_fams, "may not change once set")
        if len(new_fams) == 1 and policy != "SingleStack":
            e.invalid("spec.ipFamilyPolicy", policy,
                      "must be set to 'SingleStack' when releasing the secondary ipFamily")
    elif old_fams and new_fams[0] != old_fams[0]:
        e.invalid("spec.ipFamilies[0]", new_fams, "may not change once set")
