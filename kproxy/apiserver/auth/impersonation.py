"""User impersonation, as kube-apiserver: an authenticated user may act as another with the
Impersonate-User and Impersonate-Group headers when RBAC allows it the `impersonate` verb on
`users` (or `serviceaccounts` in the account's namespace, for a service-account user) and on
`groups`, each by name. Impersonate-Uid and Impersonate-Extra-* are refused (400) rather than
ignored: RBAC here never looks at uid or extra attributes (only bound service-account tokens
carry them, for `auth whoami`), so they would mean nothing. Pure."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from kproxy.api import status as st
from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.identity import (ANONYMOUS, SERVICE_ACCOUNT_PREFIX, SERVICE_ACCOUNTS_GROUP, UNAUTHENTICATED,
                                            UserInfo, authenticated_user)

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UNSUPPORTED_PREFIXES = ("impersonate-uid", "impersonate-extra-")


@dataclass(frozen=True)
class Impersonation:
    user: str
    groups: tuple[str, ...]


def requested(headers: Mapping[str, str]) -> Impersonation | None:
    """The impersonation a request asks for, None if none; 400 for a malformed request."""
    names = [k.lower() for k in headers.keys()]
    unsupported = sorted({k for k in names if k.startswith(UNSUPPORTED_PREFIXES)})
    if unsupported:
        raise st.bad_request(f"impersonation headers {', '.join(unsupported)} are not supported by this server")
    users = headers.getall(USER_HEADER, []) if hasattr(headers, "getall") else \
        [headers[USER_HEADER]] if USER_HEADER in headers else []
    groups = headers.getall(GROUP_HEADER, []) if hasattr(headers, "getall") else \
        [headers[GROUP_HEADER]] if GROUP_HEADER in headers else []
    if not users:
        if groups:
            raise st.bad_request(f"requested impersonation of groups {groups} without impersonating a user")
        return None
    if len(users) > 1 or not users[0].strip():
        raise st.bad_request("Impersonate-User must be given once, with a user name")
    return Impersonation(users[0].strip(), tuple(g.strip() for g in groups if g.strip()))


def _service_account(user: str) -> tuple[str, str] | None:
    if not user.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = user[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
    return (namespace, name) if sep and namespace and name and ":" not in name else None


def checks(imp: Impersonation) -> list[RequestAttributes]:
    """What the acting user must be allowed (verb impersonate) to impersonate as asked."""
    sa = _service_account(imp.user)
    if sa is not None:
        out = [RequestAttributes("impersonate", "", True, "", "serviceaccounts", "", sa[0], sa[1])]
    else:
        out = [RequestAttributes("impersonate", "", True, "", "users", "", "", imp.user)]
    out.extend(RequestAttributes("impersonate", "", True, "", "groups", "", "", g) for g in imp.groups)
    return out


def impersonated_user(imp: Impersonation) -> UserInfo:
    """The user the request then acts as: the named user and groups, plus what upstream adds
    (system:authenticated; the service-account groups for a service-account user)."""
    if imp.user == ANONYMOUS.name:
        return UserInfo(imp.user, tuple(dict.fromkeys([*imp.groups, UNAUTHENTICATED])))
    groups = list(imp.groups)
    sa = _service_account(imp.user)
    if sa is not None:
        groups += [SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{sa[0]}"]
    return authenticated_user(imp.user, groups)
