"""The audit log: one JSON line per mutating request (and per refused request of any kind)
with who, what and the answer, appended to DIR/audit.log (0600). Bodies are never logged."""
from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from typing import IO

from kproxy.apiserver.auth.attributes import RequestAttributes
from kproxy.apiserver.auth.identity import UserInfo

log = logging.getLogger(__name__)
AUDIT_LOG_NAME = "audit.log"


class AuditLog:
    def __init__(self, path: str):
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._file: IO[str] | None = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
        self._lock = threading.Lock()

    def record(self, user: UserInfo, attrs: RequestAttributes, code: int, source: str | None) -> None:
        line = json.dumps({
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "user": user.name, "groups": list(user.groups), "verb": attrs.verb,
            "apiGroup": attrs.api_group, "resource": attrs.resource_with_sub, "namespace": attrs.namespace,
            "name": attrs.name, "path": attrs.path if not attrs.resource_request else None,
            "code": code, "sourceIP": source,
        }, separators=(",", ":"))
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line + "\n")
            except OSError as exc:  # a full disk must not fail the request that was already served
                log.error("cannot write the audit log %s: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
