"""Who a request is from."""
from __future__ import annotations

from dataclasses import dataclass

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
MASTERS = "system:masters"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    # extra attributes as (key, values) pairs, e.g. the pod a bound token was issued for
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def authenticated(self) -> bool:
        return AUTHENTICATED in self.groups

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups


ANONYMOUS = UserInfo("system:anonymous", (UNAUTHENTICATED,))
# requests on the plain-HTTP loopback listener (--insecure-bind) act with full rights, as
# kube-apiserver's old insecure port did
INSECURE = UserInfo("system:unsecured", (MASTERS, AUTHENTICATED))


def authenticated_user(name: str, groups: tuple[str, ...] | list[str]) -> UserInfo:
    """A user with system:authenticated added (once)."""
    return UserInfo(name, tuple(dict.fromkeys([*groups, AUTHENTICATED])))


def service_account_user(namespace: str, name: str, uid: str = "",
                         extra: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> UserInfo:
    user = authenticated_user(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}",
                              (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}"))
    return UserInfo(user.name, user.groups, uid, extra)
