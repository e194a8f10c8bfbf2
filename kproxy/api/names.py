"""Syntax checks for names, label keys/values, ports and IPs, as k8s.io/apimachinery's
util/validation does them.

Every `check_*` function returns a list of human-readable problems (empty = valid) with the
same wording Kubernetes uses, so callers can turn each into a field error.
"""
from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63
QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
IANA_SVC_NAME_MAX = 15

_DNS1123_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + r")*"
_DNS1035_LABEL_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = r"(" + _QUALIFIED_NAME_FMT + r")?"

_DNS1123_LABEL_RE = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE = re.compile(_DNS1035_LABEL_FMT)
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_IANA_CHARS_RE = re.compile(r"[-a-z0-9]+")
_IANA_LETTER_RE = re.compile(r"[a-z]")

DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    f"regex used for validation is '{_DNS1123_LABEL_FMT}')"
)
DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', "
    f"regex used for validation is '{_DNS1123_SUBDOMAIN_FMT}')"
)
DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    f"regex used for validation is '{_DNS1035_LABEL_FMT}')"
)
QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
    f"regex used for validation is '{_QUALIFIED_NAME_FMT}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    f"'12345', regex used for validation is '{_LABEL_VALUE_FMT}')"
)
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_IPV4_LINK_LOCAL_MULTICAST = ipaddress.ip_network("224.0.0.0/24")


def max_len_msg(n: int) -> str:
    return f"must be no more than {n} characters"


def _full(regex: re.Pattern[str], value: str) -> bool:
    return regex.fullmatch(value) is not None


def check_dns1123_label(value: str) -> list[str]:
    """RFC 1123 label: lower-case alphanumerics and '-', at most 63 characters."""
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(max_len_msg(DNS1123_LABEL_MAX))
    if not _full(_DNS1123_LABEL_RE, value):
        errs.append(DNS1123_LABEL_MSG)
    return errs


def check_dns1123_subdomain(value: str) -> list[str]:
    """RFC 1123 subdomain: dot-separated labels, at most 253 characters."""
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_msg(DNS1123_SUBDOMAIN_MAX))
    if not _full(_DNS1123_SUBDOMAIN_RE, value):
        errs.append(DNS1123_SUBDOMAIN_MSG)
    return errs


def check_dns1035_label(value: str) -> list[str]:
    """RFC 1035 label: like a 1123 label but starting with a letter."""
    errs = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(max_len_msg(DNS1035_LABEL_MAX))
    if not _full(_DNS1035_LABEL_RE, value):
        errs.append(DNS1035_LABEL_MSG)
    return errs


def check_qualified_name(value: str) -> list[str]:
    """A label key / annotation key: `[prefix/]name`, prefix a DNS-1123 subdomain, name <= 63."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in check_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + QUALIFIED_NAME_MSG
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_msg(QUALIFIED_NAME_MAX))
    if name and not _full(_QUALIFIED_NAME_RE, name):
        errs.append("name part " + QUALIFIED_NAME_MSG)
    return errs


def check_label_value(value: str) -> list[str]:
    """A label value: empty, or a qualified-name-like string of at most 63 characters."""
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_msg(LABEL_VALUE_MAX))
    if not _full(_LABEL_VALUE_RE, value):
        errs.append(LABEL_VALUE_MSG)
    return errs


def check_port_name(value: str) -> list[str]:
    """An IANA_SVC_NAME (RFC 6335): the name form of a (target) port."""
    errs = []
    if len(value) > IANA_SVC_NAME_MAX:
        errs.append(max_len_msg(IANA_SVC_NAME_MAX))
    if not _full(_IANA_CHARS_RE, value):
        errs.append("must contain only alphanumeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if not _IANA_LETTER_RE.search(value):
        errs.append("must contain at least one letter (a-z)")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_int(value: object) -> bool:
    """A JSON integer (bool is not one, although Python says so)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_port_number(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else [PORT_RANGE_MSG]


def parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, or None if `value` is not a canonical-enough IP (no leading zeros, no zone)."""
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def check_ip(value: str) -> list[str]:
    return [] if parse_ip(value) is not None else [IP_MSG]


def check_ipv4(value: str) -> list[str]:
    ip = parse_ip(value)
    return [] if isinstance(ip, ipaddress.IPv4Address) else ["must be a valid IPv4 address"]


def check_ipv6(value: str) -> list[str]:
    ip = parse_ip(value)
    return [] if isinstance(ip, ipaddress.IPv6Address) else ["must be a valid IPv6 address"]


def check_cidr(value: str) -> list[str]:
    """A network in CIDR form; host bits may be set, as Go's net.ParseCIDR allows."""
    if not isinstance(value, str) or "/" not in value:
        return [CIDR_MSG]
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [CIDR_MSG]
    return []


def check_non_special_ip(value: str) -> list[str]:
    """An IP usable as an endpoint or external IP (ValidateEndpointIP / ValidateNonSpecialIP):
    not unspecified, loopback, link-local unicast or link-local multicast."""
    ip = parse_ip(value)
    if ip is None:
        return [IP_MSG]
    return special_ip_problems(ip, value)


def special_ip_problems(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, value: str) -> list[str]:
    """check_non_special_ip for an address already parsed from `value`."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback, as Go sees it
    if ip.is_unspecified:
        return [f"may not be unspecified ({value})"]
    if ip.is_loopback:
        return ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    if ip.is_link_local:
        return ["may not be in the link-local range (169.254.0.0/16, fe80::/10)"]
    if _is_link_local_multicast(ip):
        return ["may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"]
    return []


def _is_link_local_multicast(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Go's IP.IsLinkLocalMulticast: 224.0.0.0/24, or an IPv6 multicast with link-local scope."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _IPV4_LINK_LOCAL_MULTICAST
    packed = ip.packed
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02
