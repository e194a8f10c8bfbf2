"""Per-resource strategies: what one kind adds to the registry's generic write paths, as
Kubernetes' generic registry has it (pkg/registry/*/strategy.go and the REST storage hooks).

The registry calls the hooks of `strategy_for(resource)` at fixed points of every write and
never names a kind itself: adding a resource is one entry in kproxy.api.resources plus, when it
needs more than the defaults, a Strategy here registered in `build_strategies`.

Hooks run in this order:
- create: prepare_for_create -> defaults -> admission -> validation -> quota -> before_create
- update: prepare_for_update (finalize for that subresource) -> defaults -> canonicalize_update -> before_update -> validation
  -> quota (when quota_on_update)
- delete: before_delete -> grace_period -> marked (mark_deleting) or removed (after_delete)

before_create/before_update may take resources (ClusterIPs, NodePorts) and return a
Reservation: the registry commits it after the store write and rolls it back on any failure.
"""
from __future__ import annotations

import base64
import copy
import re
from typing import Any, Mapping

from kproxy.api import resources as R
from kproxy.api import status as st
from kproxy.api.defaults import drop_type_dependent_fields
from kproxy.api.resources import Resource
from kproxy.apiserver.service_alloc import Reservation, ServiceAllocations

PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
DEFAULT_POD_GRACE_SECONDS = 30
NAMESPACE_FINALIZER = "kubernetes"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class Strategy:
    """The defaults: a plain object with no side effects beyond its own key."""

    # PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate)
    allow_create_on_update = False
    # writes read shared state first (allocators, other objects): they take the registry's
    # one write lock instead of only the object's own
    serialised = False
    # ResourceQuota is checked on update too, not only on create (usage can change)
    quota_on_update = False
    # deletion may wait for a grace period (grace_period); the registry tracks the deadlines
    graceful_deletion = False

    def __init__(self, resource: Resource):
        self.resource = resource

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        """Fields a client may not set on create (status, system finalizers); in place."""

    def prepare_for_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Fields a main-resource update may not change; in place. The status has its own
        subresource when the resource has one."""
        if self.resource.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def canonicalize_update(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """The updated object after defaulting, before allocation and validation."""
        return new

    def finalize(self, old: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The object after a write to its finalize subresource (paths.py offers it only
        where a strategy implements it)."""
        raise st.bad_request(f"{self.resource.plural} have no finalize subresource")

    def before_create(self, obj: dict[str, Any]) -> tuple[dict[str, Any], Reservation | None]:
        return obj, None

    def before_update(self, old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], Reservation | None]:
        return new, None

    def before_delete(self, obj: dict[str, Any]) -> None:
        """Raises ApiError when the object may not be deleted now."""

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int:
        """Seconds the deletion waits (0: at once, or as soon as finalizers allow)."""
        return 0

    def holds_deletion(self, obj: dict[str, Any]) -> bool:
        """Kind-specific finalizers beyond metadata.finalizers keep a marked object stored."""
        return False

    def mark_deleting(self, obj: dict[str, Any]) -> None:
        """Changes to an object marked for deletion (deletionTimestamp set); in place."""

    def after_delete(self, obj: dict[str, Any]) -> None:
        """The object is gone from the store: release what it held."""


class PodStrategy(Strategy):
    graceful_deletion = True

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def grace_period(self, obj: dict[str, Any], requested: int | None) -> int:
        """Only scheduled, non-terminal pods are deleted gracefully (the kubelet's job)."""
        spec = obj.get("spec") or {}
        if not spec.get("nodeName"):
            return 0
        if (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_POD_GRACE_SECONDS)
        return max(0, int(grace)) if isinstance(grace, int) else DEFAULT_POD_GRACE_SECONDS


class ServiceStrategy(Strategy):
    """ClusterIPs and NodePorts come from the allocators on every write."""

    serialised = True
    quota_on_update = True

    def __init__(self, resource: Resource, services: ServiceAllocations):
        super().__init__(resource)
        self.services = services

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {"loadBalancer": {}}
        self.services.init_families(obj, None)

    def canonicalize_update(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        # a type change drops what the new type does not allow (ipFamilies for ExternalName, ...)
        return drop_type_dependent_fields(old, new)

    def before_create(self, obj: dict[str, Any]) -> tuple[dict[str, Any], Reservation | None]:
        return self.services.for_create(obj)

    def before_update(self, old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], Reservation | None]:
        return self.services.for_update(old, new)

    def after_delete(self, obj: dict[str, Any]) -> None:
        self.services.for_delete(obj).commit()


class NamespaceStrategy(Strategy):
    """spec.finalizers ("kubernetes") keeps a deleted namespace Terminating until the
    namespace controller has emptied it and finalized it (the finalize subresource)."""

    serialised = True

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        finalizers = list(spec.get("finalizers") or [])
        if NAMESPACE_FINALIZER not in finalizers:
            finalizers.append(NAMESPACE_FINALIZER)
        spec["finalizers"] = finalizers
        obj["spec"] = spec
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        super().prepare_for_update(old, new)
        new.setdefault("spec", {})["finalizers"] = list((old.get("spec") or {}).get("finalizers") or [])

    def finalize(self, old: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """Only spec.finalizers changes (the namespace controller removes "kubernetes")."""
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
        return new

    def before_delete(self, obj: dict[str, Any]) -> None:
        m = obj.get("metadata") or {}
        name = m.get("name", "")
        if name in PROTECTED_NAMESPACES:
            raise st.forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                               kind="namespaces", name=name)
        if m.get("deletionTimestamp") and (self.holds_deletion(obj) or m.get("finalizers")):
            raise st.conflict("namespaces", name,
                              "The system is ensuring all content is removed from this namespace.  "
                              "Upon completion, this namespace will automatically be purged by the system.")

    def holds_deletion(self, obj: dict[str, Any]) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: dict[str, Any]) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


class ResourceQuotaStrategy(Strategy):
    serialised = True  # every quota-checked write reads the quotas

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = {}


class WorkloadStrategy(Strategy):
    """ReplicaSets and Deployments: metadata.generation counts the spec changes their
    controller must act on, so status.observedGeneration tells a client (`kubectl rollout
    status`) whether it has. (kube-apiserver also counts a Deployment's annotation changes,
    but lets its status writes change annotations; here the controller writes the revision
    annotation with a plain patch, which must not look like a new rollout.)"""

    def __init__(self, resource: Resource, initial_status: Mapping[str, Any] | None = None):
        super().__init__(resource)
        # the status fields Go always serialises (no omitempty): typed clients require them
        self.initial_status = dict(initial_status or {})

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        obj["status"] = dict(self.initial_status)
        obj.setdefault("metadata", {})["generation"] = 1

    def canonicalize_update(self, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        generation = (old.get("metadata") or {}).get("generation") or 1
        if old.get("spec") != new.get("spec"):
            generation += 1
        new.setdefault("metadata", {})["generation"] = generation
        return new


class SecretStrategy(Strategy):
    """stringData is a write-only convenience: merged into data (base64) on every write and
    never stored, as upstream's Secret conversion does before validation."""

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        merge_string_data(obj)

    def prepare_for_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        super().prepare_for_update(old, new)
        merge_string_data(new)


def merge_string_data(obj: dict[str, Any]) -> None:
    """Moves obj["stringData"] into obj["data"] as base64, its keys winning; in place. Values
    that are not strings are a 400, as a body upstream cannot decode."""
    if "stringData" not in obj:
        return
    string_data = obj.pop("stringData")
    if string_data is None:
        return
    if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
        raise st.bad_request("stringData must be a map of strings")
    data = obj.get("data")
    if data is None:
        data = obj["data"] = {}
    elif not isinstance(data, dict):
        raise st.bad_request("data must be a map of base64-encoded strings")
    for key, value in string_data.items():
        # a lone surrogate (JSON allows "\\ud800") becomes U+FFFD, as Go's decoder makes it
        data[key] = base64.b64encode(_LONE_SURROGATE.sub("\ufffd", value).encode()).decode()


class CreateOnUpdateStrategy(Strategy):
    allow_create_on_update = True


def build_strategies(services: ServiceAllocations) -> Mapping[Resource, Strategy]:
    """The strategy of every resource that needs more than the defaults."""
    return {
        R.PODS: PodStrategy(R.PODS),
        R.SERVICES: ServiceStrategy(R.SERVICES, services),
        R.NAMESPACES: NamespaceStrategy(R.NAMESPACES),
        R.RESOURCE_QUOTAS: ResourceQuotaStrategy(R.RESOURCE_QUOTAS),
        R.SECRETS: SecretStrategy(R.SECRETS),
        R.ENDPOINTS: CreateOnUpdateStrategy(R.ENDPOINTS),
        R.EVENTS: CreateOnUpdateStrategy(R.EVENTS),
        R.LEASES: CreateOnUpdateStrategy(R.LEASES),
        R.REPLICA_SETS: WorkloadStrategy(R.REPLICA_SETS),
        R.DEPLOYMENTS: WorkloadStrategy(R.DEPLOYMENTS),
        R.REPLICATION_CONTROLLERS: WorkloadStrategy(R.REPLICATION_CONTROLLERS, {"replicas": 0}),
        R.POD_DISRUPTION_BUDGETS: WorkloadStrategy(R.POD_DISRUPTION_BUDGETS, dict.fromkeys(  # the same generation rule
            ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"), 0)),
        **_batch_strategies(),
        R.DAEMON_SETS: WorkloadStrategy(R.DAEMON_SETS, dict.fromkeys(
            ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"), 0)),
        R.STATEFUL_SETS: WorkloadStrategy(R.STATEFUL_SETS, {"replicas": 0, "availableReplicas": 0}),
    }


def _batch_strategies() -> dict[Resource, Strategy]:
    from kproxy.apiserver.strategy_batch import JobStrategy  # subclasses this module's: after it
    return {R.JOBS: JobStrategy(R.JOBS), R.CRON_JOBS: WorkloadStrategy(R.CRON_JOBS)}

