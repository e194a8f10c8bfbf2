"""The audit log: one JSON line per mutating request (and per refused request of any kind)
with who, what and the answer, appended to DIR/audit.log (0600). Bodies are never logged.

What is logged is decided by an audit policy (kube-apiserver's `audit.k8s.io/v1` Policy: the
first rule that matches a request gives its level; `None` logs nothing, any other level logs
the metadata line). The default policy logs nothing for anonymous requests, so an
unauthenticated peer cannot fill the disk, and everything else at Metadata. The file is
rotated by size: at `max_bytes` it becomes audit.log.1 (the older ones shift up) and at most
`max_backups` old files are kept.
"""
from __future__ import annotations

import datetime
import fnmatch
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import IO, Any

import yaml

from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.identity import UNAUTHENTICATED, UserInfo

log = logging.getLogger(__name__)
AUDIT_LOG_NAME = "audit.log"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_BACKUPS = 10


class PolicyError(ValueError):
    """The audit policy file is malformed; the message says where."""


@dataclass(frozen=True)
class PolicyRule:
    """One rule of an audit Policy; an empty list matches everything."""

    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (group, resource names)
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    def matches(self, user: UserInfo, attrs: RequestAttributes) -> bool:
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and not set(self.user_groups) & set(user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if attrs.resource_request:
            if self.non_resource_urls:
                return False
            if self.namespaces and attrs.namespace not in self.namespaces:
                return False
            if self.resources and not any(
                    group == attrs.api_group and (not names or attrs.resource in names or attrs.resource_with_sub in names
                                                  or "*" in names or f"{attrs.resource}/*" in names)
                    for group, names in self.resources):
                return False
            return True
        if self.resources or self.namespaces:
            return False
        return not self.non_resource_urls or any(fnmatch.fnmatchcase(attrs.path, p) for p in self.non_resource_urls)


@dataclass(frozen=True)
class AuditPolicy:
    rules: tuple[PolicyRule, ...]
    default_level: str = "None"  # kube-apiserver logs nothing a rule does not name

    def level(self, user: UserInfo, attrs: RequestAttributes) -> str:
        for rule in self.rules:
            if rule.matches(user, attrs):
                return rule.level
        return self.default_level


DEFAULT_POLICY = AuditPolicy((PolicyRule("None", user_groups=(UNAUTHENTICATED,)), PolicyRule("Metadata")))


def _strings(rule: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = rule.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}.{key}: must be a list of strings")
    return tuple(value)


def parse_policy(doc: Any) -> AuditPolicy:
    """An audit.k8s.io Policy document (decoded YAML/JSON) as an AuditPolicy."""
    if not isinstance(doc, dict) or doc.get("kind") != "Policy":
        raise PolicyError('the audit policy must be an object with kind "Policy"')
    rules = doc.get("rules")
    if not isinstance(rules, list) or not rules:
        raise PolicyError("the audit policy needs a non-empty list of rules")
    out = []
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict):
            raise PolicyError(f"{where}: must be an object")
        level = rule.get("level")
        if level not in LEVELS:
            raise PolicyError(f"{where}.level: must be one of {', '.join(LEVELS)}")
        groups = []
        for j, entry in enumerate(rule.get("resources") or []):
            if not isinstance(entry, dict):
                raise PolicyError(f"{where}.resources[{j}]: must be an object")
            group = entry.get("group", "")
            if not isinstance(group, str):
                raise PolicyError(f"{where}.resources[{j}].group: must be a string")
            groups.append((group, _strings(entry, "resources", f"{where}.resources[{j}]")))
        out.append(PolicyRule(level, _strings(rule, "users", where), _strings(rule, "userGroups", where),
                              _strings(rule, "verbs", where), tuple(groups), _strings(rule, "namespaces", where),
                              _strings(rule, "nonResourceURLs", where)))
    return AuditPolicy(tuple(out))


def load_policy(path: str) -> AuditPolicy:
    """The policy in a YAML or JSON file; PolicyError (or OSError) when it cannot be used."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise PolicyError(f"not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_policy(doc)


class AuditLog:
    def __init__(self, path: str, policy: AuditPolicy = DEFAULT_POLICY, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_backups: int = DEFAULT_MAX_BACKUPS):
        self.path = path
        self.policy = policy
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._size = 0
        self._closed = False
        self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        """audit.log -> audit.log.1 -> ... -> audit.log.N; the oldest beyond N is removed."""
        assert self._file is not None
        self._file.close()
        self._file = None
        for i in range(self.max_backups, 0, -1):
            older = f"{self.path}.{i}"
            newer = self.path if i == 1 else f"{self.path}.{i - 1}"
            if os.path.exists(newer):
                os.replace(newer, older)
        if self.max_backups == 0:
            os.unlink(self.path)
        self._open()

    def record(self, user: UserInfo, attrs: RequestAttributes, code: int, source: str | None,
               authenticated: UserInfo | None = None, name: str | None = None) -> None:
        """One line for a request made as `user`. With impersonation (`authenticated` is another
        user), `user`/`groups` name who sent it and `impersonatedUser` whom it acted as, as
        kube-apiserver's audit events do. `name`, when given, is the object's name where the
        path has none (a create)."""
        if self.policy.level(user, attrs) == "None":
            return
        event: dict[str, Any] = {
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "user": user.name, "groups": list(user.groups), "verb": attrs.verb,
            "apiGroup": attrs.api_group, "resource": attrs.resource_with_sub, "namespace": attrs.namespace,
            "name": name or attrs.name, "path": attrs.path if not attrs.resource_request else None,
            "code": code, "sourceIP": source,
        }
        if authenticated is not None and authenticated is not user:
            event["user"], event["groups"] = authenticated.name, list(authenticated.groups)
            event["impersonatedUser"] = {"username": user.name, "groups": list(user.groups)}
        line = json.dumps(event, separators=(",", ":")) + "\n"
        size = len(line.encode("utf-8"))
        with self._lock:
            try:
                if self._file is not None and self._size and self._size + size > self.max_bytes:
                    self._rotate()
                if self._file is None:
                    if self._closed:
                        return
                    self._open()  # a rotation that failed half-way: try again
                assert self._file is not None
                self._file.write(line)
                self._size += size
            except OSError as exc:  # a full disk must not fail the request that was already served
                log.error("cannot write the audit log %s: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None
