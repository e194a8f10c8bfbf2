"""The authorization attributes of a request, as kube-apiserver's RequestInfo (pure)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from kproxy.apiserver import paths
from kproxy.apiserver.query import watch_requested

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class RequestAttributes:
    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    resource: str = ""  # plural
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def mutating(self) -> bool:
        return self.resource_request and self.verb in MUTATING_VERBS

    @property
    def resource_with_sub(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


_READ_VERBS = {"GET": "get", "HEAD": "get"}
CREATE_ON_GET = ("exec", "attach", "portforward")
_NON_RESOURCE_VERBS = {"GET": "get", "HEAD": "head", "POST": "post", "PUT": "put", "PATCH": "patch",
                       "DELETE": "delete"}


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> RequestAttributes:
    """Verb and target of a request. Paths that are not resource paths (discovery, openapi,
    health, unknown) are non-resource requests with the lower-cased HTTP verb."""
    try:
        api_path = paths.parse(path)
    except paths.PathNotFound:
        api_path = None
    if api_path is None or api_path.resource is None:
        return RequestAttributes(_NON_RESOURCE_VERBS.get(method, method.lower()), path)
    r = api_path.resource
    name = api_path.name or ""
    watching = api_path.legacy_watch or watch_requested(query)
    if method in ("GET", "HEAD") and api_path.subresource in CREATE_ON_GET:
        verb = "create"  # a WebSocket exec is a GET that starts a command, as kube-apiserver authorises it
    elif method in ("GET", "HEAD"):
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "POST":
        verb = "create"
    elif method == "PUT":
        verb = "update"
    elif method == "PATCH":
        verb = "patch"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = method.lower()
    return RequestAttributes(verb, path, True, r.group, r.plural, api_path.subresource or "",
                             api_path.namespace or "", name)
