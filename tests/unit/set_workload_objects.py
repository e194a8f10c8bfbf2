"""Valid DaemonSet, StatefulSet and ControllerRevision objects that tests start from
(namespace "default")."""
from __future__ import annotations

from typing import Any

from tests.unit.workload_objects import TEMPLATE

DAEMON_SET: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "DaemonSet",
    "metadata": {"name": "agent", "namespace": "default"},
    "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
}
STATEFUL_SET: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "StatefulSet",
    "metadata": {"name": "db", "namespace": "default"},
    "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
}
CONTROLLER_REVISION: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "ControllerRevision",
    "metadata": {"name": "agent-1", "namespace": "default"},
    "data": {"spec": {"template": TEMPLATE}}, "revision": 1,
}
