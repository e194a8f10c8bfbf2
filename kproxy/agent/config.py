"""The agent's configuration: a KubeProxyConfiguration-style model and its loader.

Field names follow upstream KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) in
snake_case; the YAML file uses upstream's camelCase names. kproxy adds `iptables.backend`
(nft | legacy | auto) and the agent-only settings `netns` and `nodeName` (flags only).

Guarantees: `load_config()` returns a fully validated, frozen AgentConfig or raises ConfigError
whose message names the offending field (e.g. "iptables.syncPeriod: invalid duration 'x'").
Durations are seconds (float). Flag overrides win over the file, the file over defaults.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from kproxy import modes

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"


class ConfigError(ValueError):
    """A bad configuration value; the message names the field."""


@dataclass(frozen=True)
class IptablesConfig:
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    masquerade_all: bool = False
    masquerade_bit: int = 14
    localhost_nodeports: bool = True
    backend: str = "auto"  # kproxy extra: nft | legacy | auto


@dataclass(frozen=True)
class NftablesConfig:
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    masquerade_all: bool = False
    masquerade_bit: int = 14
    endpoint_selection: str = "random"  # kproxy: random | maglev (consistent hashing in the kernel)


@dataclass(frozen=True)
class UserspaceConfig:
    """kproxy's userspace mode (no upstream equivalent)."""
    balancer: str = "maglev"  # maglev (over the client address/flow) | roundrobin
    udp_idle_timeout: float = 60.0


@dataclass(frozen=True)
class IpvsConfig:
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    scheduler: str = ""
    exclude_cidrs: tuple[str, ...] = ()
    strict_arp: bool = False
    tcp_timeout: float = 0.0
    tcp_fin_timeout: float = 0.0
    udp_timeout: float = 0.0


@dataclass(frozen=True)
class ConntrackConfig:
    max_per_core: int = 32768
    min: int = 131072
    tcp_established_timeout: float = 86400.0
    tcp_close_wait_timeout: float = 3600.0
    udp_timeout: float = 0.0
    udp_stream_timeout: float = 0.0
    tcp_be_liberal: bool = False


@dataclass(frozen=True)
class DetectLocalConfig:
    """Inputs of detectLocalMode BridgeInterface and InterfaceNamePrefix."""
    bridge_interface: str = ""
    interface_name_prefix: str = ""


DETECT_LOCAL_MODES = ("ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix")


@dataclass(frozen=True)
class AgentConfig:
    mode: str = modes.DEFAULT
    cluster_cidr: str = ""  # comma-separated CIDRs; "" = unknown
    service_cidr: str = ""  # comma-separated Service (ClusterIP) ranges; "" = unknown
    hostname_override: str = ""
    node_port_addresses: tuple[str, ...] = ()  # CIDRs; empty = all node addresses
    healthz_bind_address: str = "0.0.0.0:10256"  # "" = disabled
    metrics_bind_address: str = "127.0.0.1:10249"  # "" = disabled
    config_sync_period: float = 900.0
    kubeconfig: str = ""  # clientConnection.kubeconfig
    iptables: IptablesConfig = field(default_factory=IptablesConfig)
    nftables: NftablesConfig = field(default_factory=NftablesConfig)
    userspace: UserspaceConfig = field(default_factory=UserspaceConfig)
    ipvs: IpvsConfig = field(default_factory=IpvsConfig)
    conntrack: ConntrackConfig = field(default_factory=ConntrackConfig)
    detect_local_mode: str = "ClusterCIDR"  # how pod traffic is told; see DETECT_LOCAL_MODES
    detect_local: DetectLocalConfig = field(default_factory=DetectLocalConfig)
    netns: str | None = None  # kproxy: network namespace for all kernel work

    @property
    def node_name(self) -> str:
        return self.hostname_override

    @property
    def service_cidrs(self) -> tuple[str, ...]:
        return tuple(c for c in self.service_cidr.split(",") if c)

    def _mode_section(self) -> Any:
        spec = modes.spec(self.mode)
        return getattr(self, spec.sync_section if spec else "iptables")  # plug-in modes: iptables'

    @property
    def detect_local_interface(self) -> str:
        """The interface name (BridgeInterface) or prefix (InterfaceNamePrefix) the mode uses."""
        return {"BridgeInterface": self.detect_local.bridge_interface,
                "InterfaceNamePrefix": self.detect_local.interface_name_prefix}.get(self.detect_local_mode, "")

    @property
    def min_sync_period(self) -> float:
        """The min sync period of the chosen mode (iptables' for modes without a section)."""
        return self._mode_section().min_sync_period

    @property
    def sync_period(self) -> float:
        return self._mode_section().sync_period

    @property
    def masquerade_all(self) -> bool:
        return getattr(self._mode_section(), "masquerade_all", self.iptables.masquerade_all)

    @property
    def masquerade_bit(self) -> int:
        return getattr(self._mode_section(), "masquerade_bit", self.iptables.masquerade_bit)


# ---------------------------------------------------------------- value parsers

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go time.ParseDuration syntax ("1s", "500ms", "1m30s", "0") -> seconds. Negative is refused."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r} (want a string like '1s', '500ms', '1m30s')")
    s = text.strip()
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r} (want a string like '1s', '500ms', '1m30s')")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s:
        raise ValueError("invalid duration '' (want a string like '1s', '500ms', '1m30s')")
    return total


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def parse_bind_address(text: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port). Raises ValueError."""
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text or "")
    if not m:
        raise ValueError(f"invalid address {text!r} (want HOST:PORT)")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid address {text!r}: {host!r} is not an IP address") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid address {text!r}: port out of range")
    return host, port


def _cidr(text: Any) -> str:
    if not isinstance(text, str):
        raise ValueError(f"invalid CIDR {text!r}")
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(f"invalid CIDR {text!r}") from None


def _cidr_list(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"invalid CIDR list {value!r} (want a comma-separated string)")
    if not value.strip():
        return ""
    return ",".join(_cidr(part) for part in value.split(","))


def _node_port_addresses(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"want a list of CIDRs, got {value!r}")
    out = []
    for item in value:
        if item == "primary":  # upstream's special value: the node's primary IPs
            out.append("primary")
        else:
            out.append(_cidr(item))
    return tuple(out)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"want true or false, got {value!r}")
    return value


def _int(lo: int, hi: int):
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"want an integer, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value
    return parse


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"want a string, got {value!r}")
    return value


def _bind(value: Any) -> str:
    value = _str(value)
    if value:
        parse_bind_address(value)
    return value


def _mode(value: Any) -> str:
    value = _str(value)
    if value == "":
        return modes.DEFAULT  # upstream: empty means the platform default
    if not re.fullmatch(r"[a-z][a-z0-9-]*", value):
        raise ValueError(f"invalid mode {value!r}")
    return value


def _iptables_backend(value: Any) -> str:
    value = _str(value)
    if value not in ("nft", "legacy", "auto"):
        raise ValueError(f"must be one of nft, legacy, auto, got {value!r}")
    return value


def _one_of(*choices: str):
    def parse(value: Any) -> str:
        value = _str(value)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    return parse


def _cidr_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"want a list of CIDRs, got {value!r}")
    return tuple(_cidr(v) for v in value)


def _duration(value: Any) -> float:
    return parse_duration(value)


def _detect_local_mode(value: Any) -> str:
    value = _str(value)
    if value == "":
        return "ClusterCIDR"  # upstream's default
    if value not in DETECT_LOCAL_MODES:
        raise ValueError(f"must be one of {', '.join(DETECT_LOCAL_MODES)}, got {value!r}")
    return value


def _interface_name(value: Any) -> str:
    value = _str(value)
    if len(value) > 15 or any(c.isspace() or c in "/:" for c in value):
        raise ValueError(f"invalid interface name {value!r} (at most 15 characters, no space, '/' or ':')")
    return value


# camelCase name -> (snake_case field, parser) per section
_SYNC = {"minSyncPeriod": ("min_sync_period", _duration), "syncPeriod": ("sync_period", _duration)}
_SECTIONS: dict[str, tuple[type, dict[str, tuple[str, Any]]]] = {
    "iptables": (IptablesConfig, {
        **_SYNC,
        "masqueradeAll": ("masquerade_all", _bool),
        "masqueradeBit": ("masquerade_bit", _int(0, 31)),
        "localhostNodePorts": ("localhost_nodeports", _bool),
        "backend": ("backend", _iptables_backend),
    }),
    "nftables": (NftablesConfig, {
        **_SYNC,
        "masqueradeAll": ("masquerade_all", _bool),
        "masqueradeBit": ("masquerade_bit", _int(0, 31)),
        "endpointSelection": ("endpoint_selection", _one_of("random", "maglev")),
    }),
    "userspace": (UserspaceConfig, {
        "balancer": ("balancer", _one_of("maglev", "roundrobin")),
        "udpIdleTimeout": ("udp_idle_timeout", _duration),
    }),
    "ipvs": (IpvsConfig, {
        **_SYNC,
        "scheduler": ("scheduler", _str),
        "excludeCIDRs": ("exclude_cidrs", _cidr_tuple),
        "strictARP": ("strict_arp", _bool),
        "tcpTimeout": ("tcp_timeout", _duration),
        "tcpFinTimeout": ("tcp_fin_timeout", _duration),
        "udpTimeout": ("udp_timeout", _duration),
    }),
    "conntrack": (ConntrackConfig, {
        "maxPerCore": ("max_per_core", _int(0, 1 << 31)),
        "min": ("min", _int(0, 1 << 31)),
        "tcpEstablishedTimeout": ("tcp_established_timeout", _duration),
        "tcpCloseWaitTimeout": ("tcp_close_wait_timeout", _duration),
        "udpTimeout": ("udp_timeout", _duration),
        "udpStreamTimeout": ("udp_stream_timeout", _duration),
        "tcpBeLiberal": ("tcp_be_liberal", _bool),
    }),
}
_DETECT_LOCAL = (DetectLocalConfig, {
    "bridgeInterface": ("bridge_interface", _interface_name),
    "interfaceNamePrefix": ("interface_name_prefix", _interface_name),
})
_TOP: dict[str, tuple[str, Any]] = {
    "mode": ("mode", _mode),
    "detectLocalMode": ("detect_local_mode", _detect_local_mode),
    "clusterCIDR": ("cluster_cidr", _cidr_list),
    "serviceCIDR": ("service_cidr", _cidr_list),  # kproxy: not in upstream's v1alpha1
    "hostnameOverride": ("hostname_override", _str),
    "nodePortAddresses": ("node_port_addresses", _node_port_addresses),
    "healthzBindAddress": ("healthz_bind_address", _bind),
    "metricsBindAddress": ("metrics_bind_address", _bind),
    "configSyncPeriod": ("config_sync_period", _duration),
}
# upstream fields we accept and ignore (they do not apply to kproxy)
_IGNORED_TOP = {"bindAddress", "bindAddressHardFail", "enableProfiling", "featureGates", "oomScoreAdj",
                "portRange", "logging", "showHiddenMetricsForVersion",
                "winkernel", "windowsRunAsService"}
_CLIENT_CONNECTION = {"kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"}


def _parse_section(name: str, raw: Any, spec: tuple[type, dict[str, tuple[str, Any]]] | None = None) -> Any:
    cls, fields = spec or _SECTIONS[name]
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: want a mapping, got {raw!r}")
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(f"{name}.{key}: unknown field")
        attr, parse = fields[key]
        try:
            values[attr] = parse(value)
        except ValueError as exc:
            raise ConfigError(f"{name}.{key}: {exc}") from None
    return cls(**values)


def parse_config(doc: Any) -> AgentConfig:
    """Validates a decoded KubeProxyConfiguration document; raises ConfigError."""
    if doc is None:
        return AgentConfig()
    if not isinstance(doc, Mapping):
        raise ConfigError("want a KubeProxyConfiguration mapping at the top level")
    if doc.get("apiVersion") != API_VERSION:
        raise ConfigError(f"apiVersion: want {API_VERSION!r}, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != KIND:
        raise ConfigError(f"kind: want {KIND!r}, got {doc.get('kind')!r}")
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("apiVersion", "kind") or key in _IGNORED_TOP:
            continue
        if key in _SECTIONS:
            values[key] = _parse_section(key, value)
        elif key == "detectLocal":
            values["detect_local"] = _parse_section(key, value, _DETECT_LOCAL)
        elif key == "clientConnection":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"clientConnection: want a mapping, got {value!r}")
            for sub in value:
                if sub not in _CLIENT_CONNECTION:
                    raise ConfigError(f"clientConnection.{sub}: unknown field")
            try:
                values["kubeconfig"] = _str(value.get("kubeconfig", ""))
            except ValueError as exc:
                raise ConfigError(f"clientConnection.kubeconfig: {exc}") from None
        elif key in _TOP:
            attr, parse = _TOP[key]
            try:
                values[attr] = parse(value)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}") from None
        else:
            raise ConfigError(f"{key}: unknown field")
    return AgentConfig(**values)


def load_config_file(path: str) -> AgentConfig:
    """Reads and validates a KubeProxyConfiguration YAML file; errors name the file and field."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}: not valid YAML{where}") from None
    try:
        return validate_config(parse_config(doc))
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


# Flag overrides: flag name -> (dotted field path, parser of the flag's string value)
FLAG_FIELDS: dict[str, tuple[str, Any]] = {
    "mode": ("mode", _mode),
    "cluster_cidr": ("cluster_cidr", _cidr_list),
    "service_cidr": ("service_cidr", _cidr_list),
    "node_name": ("hostname_override", _str),
    "kubeconfig": ("kubeconfig", _str),
    "netns": ("netns", _str),
    "healthz_bind_address": ("healthz_bind_address", _bind),
    "metrics_bind_address": ("metrics_bind_address", _bind),
    "min_sync_period": ("*.min_sync_period", _duration),
    "sync_period": ("*.sync_period", _duration),
    "masquerade_all": ("*.masquerade_all", _bool),
    "iptables_backend": ("iptables.backend", _iptables_backend),
    "detect_local_mode": ("detect_local_mode", _detect_local_mode),
    "pod_bridge_interface": ("detect_local.bridge_interface", _interface_name),
    "pod_interface_name_prefix": ("detect_local.interface_name_prefix", _interface_name),
}


def apply_overrides(config: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    """Returns `config` with flag values applied. Keys are FLAG_FIELDS names; None means "not
    given". A "*." path sets the field in every mode section that has it (the flag applies to
    whichever mode runs). Raises ConfigError naming the flag."""
    for flag, raw in overrides.items():
        if raw is None:
            continue
        path, parse = FLAG_FIELDS[flag]
        try:
            value = parse(raw)
        except ValueError as exc:
            raise ConfigError(f"--{flag.replace('_', '-')}: {exc}") from None
        if path.startswith("*."):
            attr = path[2:]
            changes = {}
            for section in _SECTIONS:
                sub = getattr(config, section)
                if any(f.name == attr for f in dataclasses.fields(sub)):
                    changes[section] = dataclasses.replace(sub, **{attr: value})
            config = dataclasses.replace(config, **changes)
        elif "." in path:
            section, attr = path.split(".", 1)
            changed = dataclasses.replace(getattr(config, section), **{attr: value})
            config = dataclasses.replace(config, **{section: changed})
        else:
            config = dataclasses.replace(config, **{path: value})
    return validate_config(config)


def validate_config(config: AgentConfig) -> AgentConfig:
    """Cross-field checks; returns `config` unchanged or raises ConfigError."""
    for mode, attr, name in (("BridgeInterface", "bridge_interface", "bridgeInterface"),
                             ("InterfaceNamePrefix", "interface_name_prefix", "interfaceNamePrefix")):
        if config.detect_local_mode == mode and not getattr(config.detect_local, attr):
            raise ConfigError(f"detectLocal.{name}: required when detectLocalMode is {mode}")
    for section in modes.sync_sections():
        sub = getattr(config, section)
        if sub.sync_period <= 0:
            raise ConfigError(f"{section}.syncPeriod: must be greater than 0")
        if sub.min_sync_period > sub.sync_period:
            raise ConfigError(f"{section}.minSyncPeriod: must not exceed syncPeriod "
                              f"({format_duration(sub.min_sync_period)} > {format_duration(sub.sync_period)})")
    return config


def load_config(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> AgentConfig:
    """Defaults, then the file at `path` (if any), then flag `overrides`; fully validated."""
    config = load_config_file(path) if path else AgentConfig()
    return apply_overrides(config, overrides or {})
