"""The object registry: Kubernetes' generic REST semantics over a kproxy Store.

The generic paths never name a kind: what a kind adds (status reset, allocators, finalizers,
graceful deletion, ...) comes from its Strategy (strategy.py), and the namespace and quota
checks from admission.py.

Writes may run on several threads at once (so the store can group-commit them). Writes that
read shared state first (kinds whose strategy is `serialised`, anything in a namespace with a
ResourceQuota) hold one lock; writes to one object take turns on a striped per-key lock.
Beyond that the store's optimistic concurrency decides (the grace-period sweeper writes
without locks): a request without a resourceVersion precondition that loses a race is re-read
and retried, one with a precondition gets 409 Conflict.

Stored values never carry metadata.resourceVersion; every object leaving the registry has it
set to the key's mod_revision (store revision), and every List carries the store revision the
list is consistent at.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from kproxy.api import status as st
from kproxy.api.resources import Resource
from kproxy.apiserver import fieldmanager as fm
from kproxy.apiserver import propagation
from kproxy.apiserver.admission import NamespaceLifecycle, QuotaAdmission
from kproxy.apiserver.deps import Deps
from kproxy.apiserver.objects import (
    drop_empty_meta,
    generate_name,
    meta,
    new_uid,
    parse_rfc3339,
    path_segment_problem,
    rfc3339,
    strip_resource_version,
    with_resource_version,
)
from kproxy.apiserver.paging import selected
from kproxy.apiserver.service_alloc import Reservation, ServiceAllocations
from kproxy.apiserver.strategy import Strategy, build_strategies
from kproxy.store import base as sb

log = logging.getLogger(__name__)

RACE_RETRIES = 16
KEY_LOCK_STRIPES = 64


class _Race(Exception):
    """An unconditional write lost against a concurrent writer; re-read and try again."""


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    propagation_policy: str | None = None  # Orphan | Background | Foreground (validated)
    orphan_dependents: bool | None = None


@dataclass(frozen=True)
class DeleteResult:
    """`obj` is the object as it is now (deleted or marked for deletion); `deleted` tells which."""
    obj: dict[str, Any]
    deleted: bool


class Registry:
    def __init__(self, store: sb.Store, deps: Deps, services: ServiceAllocations,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.deps = deps
        self.clock = clock
        self.strategies = build_strategies(services)
        self.namespaces = NamespaceLifecycle(store)
        self.quotas = QuotaAdmission(store)
        # earliest graceful-deletion deadline that may be pending (0: unknown, scan)
        self._next_grace_deadline: float | None = 0.0
        self._deadline_lock = threading.Lock()
        self._serial = threading.RLock()
        self._key_locks = [threading.Lock() for _ in range(KEY_LOCK_STRIPES)]
        # admission plug-ins: objects with admit_create(resource, namespace, obj), called on
        # every create after defaulting and before validation (may change obj or raise ApiError)
        self.admission: list[Any] = []

    def strategy(self, resource: Resource) -> Strategy:
        found = self.strategies.get(resource)
        return found if found is not None else Strategy(resource)

    # ------------------------------------------------------------------ reads
    def get(self, resource: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            kv = self.store.get(resource.store_key(name, namespace))
        except sb.NotFound:
            raise st.not_found(resource.plural, name, resource.group) from None
        return with_resource_version(kv.value, kv.mod_revision)

    def list(self, resource: Resource, namespace: str | None, label_selector: Any = None,
             field_selector: Any = None) -> dict[str, Any]:
        kvs, revision = self.store.list(resource.store_prefix(namespace))
        items = []
        for kv in kvs:
            if selected(kv.value, label_selector, field_selector):
                items.append(with_resource_version(kv.value, kv.mod_revision))
        return {
            "kind": resource.list_kind,
            "apiVersion": resource.group_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    # ------------------------------------------------------------------ create
    def create(self, resource: Resource, namespace: str | None, body: dict[str, Any],
               dry_run: bool = False, manager: fm.Manager | None = None) -> dict[str, Any]:
        """POST; `manager` (when given) is recorded in managedFields."""
        name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) and \
            isinstance(body.get("metadata"), dict) else None
        with self._serialised(resource, namespace), self._key_lock(resource, namespace, name):
            return self._create(resource, namespace, body, dry_run, manager)

    def _create(self, resource: Resource, namespace: str | None, body: dict[str, Any],
                dry_run: bool = False, manager: fm.Manager | None = None) -> dict[str, Any]:
        obj = self._check_body(resource, body, namespace)
        m = meta(obj)
        if not m.get("name"):
            if m.get("generateName"):
                m["name"] = generate_name(str(m["generateName"]))
            else:
                raise st.invalid(resource.kind, "", [{
                    "reason": "FieldValueRequired", "field": "metadata.name",
                    "message": "name or generateName is required"}], resource.group)
        self._check_name(resource, m["name"])
        if resource.namespaced:
            self.namespaces.check_accepts(namespace or "", resource, m["name"])
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            m.pop(key, None)
        m["uid"] = new_uid()
        m["creationTimestamp"] = rfc3339(self.clock())
        if resource.namespaced:
            m["namespace"] = namespace
        else:
            m.pop("namespace", None)
        strategy = self.strategy(resource)
        strategy.prepare_for_create(obj)
        obj = self.deps.apply_defaults(resource, obj)
        for plugin in self.admission:
            plugin.admit_create(resource, namespace, obj)
        if manager is not None and manager.operation == fm.UPDATE:
            obj = fm.record_update(resource, None, obj, manager, rfc3339(self.clock()))
        obj = drop_empty_meta(obj)
        self._validate(resource, obj, None)
        if resource.namespaced:
            self.quotas.admit(resource, namespace or "", obj, None)
        obj, reservation = strategy.before_create(obj)
        try:
            if dry_run:
                out = copy.deepcopy(obj)
                meta(out)["resourceVersion"] = ""
                if reservation:
                    reservation.rollback()
                return out
            try:
                kv = self.store.create(resource.store_key(m["name"], namespace), strip_resource_version(obj))
            except sb.AlreadyExists:
                raise st.already_exists(resource.plural, m["name"], resource.group) from None
        except BaseException:
            if reservation:
                reservation.rollback()
            raise
        if reservation:
            reservation.commit()
        return with_resource_version(kv.value, kv.mod_revision)

    # ------------------------------------------------------------------ update
    def update(self, resource: Resource, namespace: str | None, name: str, body: dict[str, Any],
               subresource: str | None = None, dry_run: bool = False,
               manager: fm.Manager | None = None) -> tuple[dict[str, Any], bool]:
        """PUT. Returns (object, created). Without a resourceVersion in the body the update is
        unconditional and retried when a concurrent write gets in between."""
        with self._serialised(resource, namespace), self._key_lock(resource, namespace, name):
            return self._retrying(resource, name, lambda: self._update_once(
                resource, namespace, name, body, subresource, dry_run, manager))

    def _update_once(self, resource: Resource, namespace: str | None, name: str, body: dict[str, Any],
                     subresource: str | None, dry_run: bool,
                     manager: fm.Manager | None = None) -> tuple[dict[str, Any], bool]:
        obj = self._check_body(resource, body, namespace)
        m = meta(obj)
        if m.get("name") and m["name"] != name:
            raise st.bad_request(f"the name of the object ({m['name']}) does not match the name on the URL ({name})")
        m["name"] = name
        key = resource.store_key(name, namespace)
        try:
            current = self.store.get(key)
        except sb.NotFound:
            if self.strategy(resource).allow_create_on_update and subresource is None:
                return self._create(resource, namespace, obj, dry_run=dry_run, manager=manager), True
            raise st.not_found(resource.plural, name, resource.group) from None
        expected = self._expected_revision(resource, name, m.get("resourceVersion"), current.mod_revision)
        return self._write_update(resource, namespace, name, current, obj, subresource, expected, dry_run,
                                  manager), False

    def patch(self, resource: Resource, namespace: str | None, name: str, patch_type: str, patch: Any,
              subresource: str | None = None, dry_run: bool = False,
              check: Callable[[dict[str, Any]], None] | None = None,
              manager: fm.Manager | None = None) -> dict[str, Any]:
        """PATCH; `check` sees the patched object before anything is written (field validation).
        The patch is applied to the latest version; a concurrent write makes it start over."""
        with self._serialised(resource, namespace), self._key_lock(resource, namespace, name):
            return self._retrying(resource, name, lambda: self._patch_once(
                resource, namespace, name, patch_type, patch, subresource, dry_run, check, manager))[0]

    def apply(self, resource: Resource, namespace: str | None, name: str, config: Any, manager: fm.Manager,
              subresource: str | None = None, dry_run: bool = False, force: bool = False,
              check: Callable[[dict[str, Any]], None] | None = None,
              may_create: Callable[[], None] | None = None) -> tuple[dict[str, Any], bool]:
        """Server-side apply of `config` by `manager`: (object, created). A missing object is
        created (after `may_create`, which raises when the caller may not create); `force`
        takes over the fields other managers own instead of a 409."""
        with self._serialised(resource, namespace), self._key_lock(resource, namespace, name):
            return self._retrying(resource, name, lambda: self._patch_once(
                resource, namespace, name, "apply", config, subresource, dry_run, check, manager, force,
                may_create))

    def _patch_once(self, resource: Resource, namespace: str | None, name: str, patch_type: str, patch: Any,
                    subresource: str | None, dry_run: bool,
                    check: Callable[[dict[str, Any]], None] | None,
                    manager: fm.Manager | None = None, force: bool = False,
                    may_create: Callable[[], None] | None = None) -> tuple[dict[str, Any], bool]:
        """(patched object, created)."""
        key = resource.store_key(name, namespace)
        try:
            current = self.store.get(key)
        except sb.NotFound:
            if patch_type == "apply" and subresource is None and manager is not None:
                if may_create is not None:
                    may_create()
                created = self._applied(resource, name, None, patch, manager, force)
                if check is not None:
                    check(created)
                return self._create(resource, namespace, created, dry_run), True
            raise st.not_found(resource.plural, name, resource.group) from None
        # a private copy: patch functions must not reach the stored value's nested parts
        original = copy.deepcopy(with_resource_version(current.value, current.mod_revision))
        try:
            if patch_type == "apply" and manager is not None:
                patched = self._applied(resource, name, original, patch, manager, force)
            elif patch_type == "json":
                if not isinstance(patch, list):
                    raise st.bad_request("json patch must be a JSON array of operations")
                patched = self.deps.json_patch(original, patch)
            else:
                if not isinstance(patch, dict):
                    raise st.bad_request(f"{patch_type} patch must be a JSON object")
                if patch_type == "strategic":
                    patched = self.deps.strategic_merge_patch(original, patch, resource)
                else:
                    patched = self.deps.merge_patch(original, patch)
        except st.ApiError:
            raise
        except self.deps.patch_too_large as exc:
            raise st.too_large(str(exc)) from None
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            # Kubernetes answers an inapplicable patch with 422 (json) or 400 (merge)
            msg = str(exc) or type(exc).__name__
            if patch_type == "json":
                raise st.ApiError(st.status(422, "Invalid", f"the server rejected our request due to an error in our request: {msg}")) from None
            raise st.bad_request(f"unable to apply {patch_type} patch: {msg}") from None
        if not isinstance(patched, dict):
            raise st.bad_request("the patch result is not an object")
        if check is not None:
            check(patched)
        obj = self._check_body(resource, patched, namespace)
        pm = meta(obj)
        if pm.get("name") != name:
            raise st.bad_request(f"the name of the object ({pm.get('name')}) does not match the name on the URL ({name})")
        # A resourceVersion written by the patch itself is a precondition; the one we put in
        # from the current object is not (Kubernetes patches the latest version).
        expected = self._expected_revision(resource, name, pm.get("resourceVersion"), current.mod_revision)
        return self._write_update(resource, namespace, name, current, obj, subresource, expected, dry_run,
                                  manager), False

    def _applied(self, resource: Resource, name: str, live: dict[str, Any] | None, config: Any,
                 manager: fm.Manager, force: bool) -> dict[str, Any]:
        """The object after a server-side apply of `config`, with its managedFields."""
        if not isinstance(config, dict):
            raise st.bad_request("an apply patch must be an object (the applied configuration)")
        config = self._check_body(resource, config, None)
        cm = meta(config)
        if cm.get("name") not in (None, name):
            raise st.bad_request(f"the name of the object ({cm.get('name')}) does not match the name on the URL ({name})")
        cm["name"] = name
        try:
            return fm.record_apply(resource, live, config, manager, rfc3339(self.clock()), force)
        except fm.ApplyConflict as exc:
            message, causes = fm.conflict_message(exc.conflicts)
            raise st.ApiError(st.status(409, "Conflict", message, causes=causes)) from None
        except fm.BadConfig as exc:
            raise st.bad_request(f"failed to create typed patch object ({resource.group_version}, "
                                 f"Kind={resource.kind}): {exc}") from None

    def update_with(self, resource: Resource, namespace: str | None, name: str,
                    change: Callable[[dict[str, Any]], dict[str, Any]], dry_run: bool = False) -> dict[str, Any]:
        """A server-side change of the stored object (a subresource such as pods/binding):
        `change` gets a copy of the latest version and returns the new one, or raises ApiError;
        a concurrent write makes it start over. No defaulting or update validation: `change`
        is the whole of what such a subresource may do."""
        def once() -> dict[str, Any]:
            key = resource.store_key(name, namespace)
            try:
                current = self.store.get(key)
            except sb.NotFound:
                raise st.not_found(resource.plural, name, resource.group) from None
            new = strip_resource_version(change(copy.deepcopy(current.value)))
            if dry_run or new == current.value:
                return with_resource_version(new, current.mod_revision)
            try:
                kv = self.store.update(key, new, expected_revision=current.mod_revision)
            except sb.Conflict:
                raise _Race() from None
            except sb.NotFound:
                raise st.not_found(resource.plural, name, resource.group) from None
            return with_resource_version(kv.value, kv.mod_revision)

        with self._serialised(resource, namespace), self._key_lock(resource, namespace, name):
            return self._retrying(resource, name, once)

    def _expected_revision(self, resource: Resource, name: str, rv: Any, current: int) -> int:
        if rv in (None, ""):
            return current  # unconditional update, as Kubernetes allows (retried on a race)
        try:
            wanted = int(str(rv))
        except ValueError:
            raise st.bad_request(f"invalid resourceVersion {rv!r}: must be an integer") from None
        if wanted != current:
            raise st.conflict(resource.plural, name,
                              "the object has been modified; please apply your changes to the latest version and try again",
                              resource.group)
        return current

    def _write_update(self, resource: Resource, namespace: str | None, name: str, current: sb.KeyValue,
                      obj: dict[str, Any], subresource: str | None, expected: int, dry_run: bool,
                      manager: fm.Manager | None = None) -> dict[str, Any]:
        old = current.value
        strategy = self.strategy(resource)
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        elif subresource == "finalize":
            new = strategy.finalize(old, obj)
        else:
            new = obj
            self._keep_immutable_meta(old, new)
            strategy.prepare_for_update(old, new)
        new = strip_resource_version(new)
        reservation: Reservation | None = None
        if subresource is None:
            new = self.deps.apply_defaults(resource, new)
            new = strategy.canonicalize_update(old, new)
            new, reservation = strategy.before_update(old, new)
        if manager is not None:
            new = self._record(resource, old, new, obj, manager)
        new = drop_empty_meta(new)
        try:
            self._validate(resource, new, old)
            if strategy.quota_on_update and resource.namespaced and subresource is None:
                self.quotas.admit(resource, namespace or "", new, old)
            if new == old:
                if reservation:
                    reservation.rollback()
                return with_resource_version(old, current.mod_revision)
            if dry_run:
                if reservation:
                    reservation.rollback()
                return with_resource_version(new, current.mod_revision)
            if strategy.graceful_deletion and (new.get("metadata") or {}).get("deletionTimestamp"):
                deadline = parse_rfc3339(new["metadata"]["deletionTimestamp"])
                if deadline is not None:
                    self._note_grace_deadline(deadline)
            if self._finished_deleting(strategy, new):
                kv = self._store_delete(resource, name, namespace, expected)
                if reservation:
                    reservation.rollback()
                strategy.after_delete(old)
                return with_resource_version(kv.value, kv.mod_revision)
            try:
                kv = self.store.update(resource.store_key(name, namespace), new, expected_revision=expected)
            except sb.Conflict:
                raise _Race() from None
            except sb.NotFound:
                raise st.not_found(resource.plural, name, resource.group) from None
        except BaseException:
            if reservation:
                reservation.rollback()
            raise
        if reservation:
            reservation.commit()
        return with_resource_version(kv.value, kv.mod_revision)

    def _record(self, resource: Resource, old: dict[str, Any], new: dict[str, Any], written: dict[str, Any],
                manager: fm.Manager) -> dict[str, Any]:
        """`new` with its managedFields: an apply computed them already (`written` carries them
        through a subresource write too), an update records what it changed."""
        if manager.operation == fm.APPLY:
            out = dict(new)
            out["metadata"] = {**(new.get("metadata") or {}),
                               "managedFields": (written.get("metadata") or {}).get("managedFields") or []}
            if not out["metadata"]["managedFields"]:
                del out["metadata"]["managedFields"]
            return out
        return fm.record_update(resource, old, new, manager, rfc3339(self.clock()))

    def _retrying(self, resource: Resource, name: str, attempt: Callable[[], Any]) -> Any:
        """Runs `attempt` again when it lost a race with a concurrent writer (it re-reads the
        object each time); a conditional request that lost a race is a 409 from inside."""
        for _ in range(RACE_RETRIES):
            try:
                return attempt()
            except _Race:
                continue
        raise st.conflict(resource.plural, name,
                          "the object has been modified; please apply your changes to the latest version and try again",
                          resource.group)

    def _key_lock(self, resource: Resource, namespace: str | None, name: Any) -> Any:
        """Writes to one object take turns (a striped lock by key), so read-modify-write
        cycles on a hot object queue up instead of failing over and over; writes to
        different objects still run (and group-commit) together."""
        if not isinstance(name, str) or not name:
            return contextlib.nullcontext()  # generateName: a new key nobody else writes
        key = resource.store_key(name, namespace)
        return self._key_locks[hash(key) % len(self._key_locks)]

    def _serialised(self, resource: Resource, namespace: str | None) -> Any:
        """The lock for writes that read shared state first: kinds whose strategy says so
        (allocators, namespaces, quotas) and any write into a namespace that has a ResourceQuota.
        Other writes run concurrently and rely on the store's optimistic concurrency."""
        if self.strategy(resource).serialised:
            return self._serial
        if resource.namespaced and namespace and self.quotas.has_quota(namespace):
            return self._serial
        return contextlib.nullcontext()

    @staticmethod
    def _keep_immutable_meta(old: dict[str, Any], new: dict[str, Any]) -> None:
        om, nm = old.get("metadata") or {}, meta(new)
        for key in ("uid", "creationTimestamp", "namespace", "deletionTimestamp", "deletionGracePeriodSeconds",
                    "generateName"):
            if key in om:
                nm[key] = om[key]
            else:
                nm.pop(key, None)

    # ------------------------------------------------------------------ delete
    def delete(self, resource: Resource, namespace: str | None, name: str,
               options: DeleteOptions = DeleteOptions()) -> DeleteResult:
        with self._serialised(resource, namespace), self._key_lock(resource, namespace, name):
            return self._retrying(resource, name, lambda: self._delete_once(resource, namespace, name, options))

    def _delete_once(self, resource: Resource, namespace: str | None, name: str,
                     options: DeleteOptions) -> DeleteResult:
        key = resource.store_key(name, namespace)
        try:
            current = self.store.get(key)
        except sb.NotFound:
            raise st.not_found(resource.plural, name, resource.group) from None
        obj = current.value
        m = obj.get("metadata") or {}
        if options.precondition_uid and options.precondition_uid != m.get("uid"):
            raise st.conflict(resource.plural, name,
                              f"Precondition failed: UID in precondition: {options.precondition_uid}, UID in object meta: {m.get('uid')}",
                              resource.group)
        if options.precondition_rv and options.precondition_rv != str(current.mod_revision):
            raise st.conflict(resource.plural, name,
                              f"Precondition failed: ResourceVersion in precondition: {options.precondition_rv}, "
                              f"ResourceVersion in object meta: {current.mod_revision}", resource.group)
        strategy = self.strategy(resource)
        strategy.before_delete(obj)
        grace = strategy.grace_period(obj, options.grace_period_seconds)
        finalizers = propagation.deletion_finalizers(
            m.get("finalizers") or [], options.propagation_policy, options.orphan_dependents)
        if grace > 0 or finalizers or strategy.holds_deletion(obj):
            marked = copy.deepcopy(obj)
            mm = meta(marked)
            if finalizers != (m.get("finalizers") or []):  # the garbage collector's, as asked
                mm["finalizers"] = finalizers
            now = self.clock()
            if grace > 0:
                deadline = now + grace
                self._note_grace_deadline(deadline)
                existing = parse_rfc3339(mm.get("deletionTimestamp", "")) if mm.get("deletionTimestamp") else None
                if existing is not None and existing <= deadline:  # an earlier deadline stands
                    if marked == obj:
                        return DeleteResult(with_resource_version(obj, current.mod_revision), False)
                else:
                    mm["deletionTimestamp"] = rfc3339(deadline)
                    mm["deletionGracePeriodSeconds"] = grace
            else:
                mm.setdefault("deletionTimestamp", rfc3339(now))
                mm["deletionGracePeriodSeconds"] = 0
            strategy.mark_deleting(marked)
            if marked == obj or options.dry_run:
                return DeleteResult(with_resource_version(marked, current.mod_revision), False)
            kv = self._store_update(key, marked, current.mod_revision)
            return DeleteResult(with_resource_version(kv.value, kv.mod_revision), False)
        if options.dry_run:
            return DeleteResult(with_resource_version(obj, current.mod_revision), True)
        kv = self._store_delete(resource, name, namespace, current.mod_revision)
        strategy.after_delete(obj)
        return DeleteResult(with_resource_version(kv.value, kv.mod_revision), True)

    def _store_update(self, key: str, value: dict[str, Any], expected: int) -> sb.KeyValue:
        try:
            return self.store.update(key, value, expected_revision=expected)
        except (sb.Conflict, sb.NotFound):
            raise _Race() from None  # changed or gone meanwhile: re-read decides

    def _store_delete(self, resource: Resource, name: str, namespace: str | None, expected: int) -> sb.KeyValue:
        try:
            return self.store.delete(resource.store_key(name, namespace), expected_revision=expected)
        except sb.NotFound:
            raise st.not_found(resource.plural, name, resource.group) from None
        except sb.Conflict:
            raise _Race() from None

    def _finished_deleting(self, strategy: Strategy, obj: dict[str, Any]) -> bool:
        """An object marked for deletion whose finalizers are gone (and whose grace period,
        if it has one, has expired) is removed by the write that made it so."""
        m = obj.get("metadata") or {}
        if not m.get("deletionTimestamp") or m.get("finalizers") or strategy.holds_deletion(obj):
            return False
        if m.get("deletionGracePeriodSeconds"):
            deadline = parse_rfc3339(m["deletionTimestamp"])
            return deadline is not None and deadline <= self.clock()
        return True

    def _note_grace_deadline(self, deadline: float) -> None:
        with self._deadline_lock:
            if self._next_grace_deadline is None or deadline < self._next_grace_deadline:
                self._next_grace_deadline = deadline

    def sweep_expired_deletions(self) -> int:
        """Deletes objects whose graceful-deletion deadline has passed and that hold no
        finalizers. Returns how many were deleted."""
        now = self.clock()
        if self._next_grace_deadline is None or self._next_grace_deadline > now:
            return 0  # nothing can be due yet: no scan
        removed = 0
        upcoming: float | None = None
        for strategy in self.strategies.values():
            if not strategy.graceful_deletion:
                continue
            for kv in self.store.list(strategy.resource.store_prefix())[0]:
                m = kv.value.get("metadata") or {}
                if not m.get("deletionTimestamp"):
                    continue
                deadline = parse_rfc3339(m["deletionTimestamp"])
                if deadline is None:
                    continue
                if m.get("finalizers") or strategy.holds_deletion(kv.value) or deadline > now:
                    # removing the finalizers deletes it at once when due; before that we look again
                    upcoming = deadline if upcoming is None else min(upcoming, deadline)
                    continue
                try:
                    self.store.delete(kv.key, expected_revision=kv.mod_revision)
                except (sb.NotFound, sb.Conflict):
                    upcoming = now  # changed meanwhile; look again next time
                    continue
                removed += 1
                strategy.after_delete(kv.value)
        self._next_grace_deadline = upcoming
        return removed

    # ------------------------------------------------------------------ helpers
    def _check_body(self, resource: Resource, body: Any, namespace: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise st.bad_request("the request body must be a JSON object")
        obj = copy.deepcopy(body)
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is not None and kind != resource.kind:
            raise st.bad_request(
                f"the kind of the object ({kind}) does not match the resource ({resource.kind}) of the URL")
        if api_version is not None and api_version != resource.group_version:
            raise st.bad_request(
                f"the apiVersion of the object ({api_version}) does not match the resource's ({resource.group_version})")
        obj["kind"] = resource.kind
        obj["apiVersion"] = resource.group_version
        m = obj.get("metadata")
        if m is None:
            obj["metadata"] = {}
        elif not isinstance(m, dict):
            raise st.bad_request("metadata must be an object")
        m = obj["metadata"]
        for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
            if key in m and m[key] is not None and not isinstance(m[key], str):
                raise st.bad_request(f"metadata.{key} must be a string")
        for key in ("labels", "annotations"):
            if key in m and m[key] is not None:
                if not isinstance(m[key], dict) or not all(isinstance(v, str) for v in m[key].values()):
                    raise st.bad_request(f"metadata.{key} must be a map of strings")
        if "finalizers" in m and m["finalizers"] is not None:
            if not isinstance(m["finalizers"], list) or not all(isinstance(v, str) for v in m["finalizers"]):
                raise st.bad_request("metadata.finalizers must be a list of strings")
        if resource.namespaced:
            ns = m.get("namespace")
            if ns and namespace and ns != namespace:
                raise st.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        return obj

    @staticmethod
    def _check_name(resource: Resource, name: str) -> None:
        problem = path_segment_problem(name)
        if problem:
            raise st.invalid(resource.kind, name, [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                                    "message": f"Invalid value: {name!r}: {problem}"}], resource.group)

    def _validate(self, resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        causes = self.deps.validate(resource, obj, old)
        if causes:
            raise st.invalid(resource.kind, (obj.get("metadata") or {}).get("name", ""), causes, resource.group)
