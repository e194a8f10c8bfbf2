"""The three patch types kube-apiserver accepts: JSON merge patch (RFC 7386), strategic merge
patch, and JSON patch (RFC 6902).

Strategic merge follows k8s.io/apimachinery/pkg/util/strategicpatch as the apiserver applies
it (MergeParallelList, IgnoreUnmatchedNulls): lists with a merge key are merged item by item
(Service ports by `port`, containers by `name`, ...), other lists are replaced; `null`
deletes a key; directives `$patch: replace|delete|merge`, `$retainKeys`,
`$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` are honoured. Those are
what `kubectl apply` (client-side) and `kubectl patch --type strategic` send.

Every function returns a new object and leaves its inputs untouched; a malformed patch raises
PatchError with a one-line reason (the apiserver answers 422/400 with it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer

from kproxy.api.meta import deep_copy
from kproxy.api.resources import Resource

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """The patch cannot be applied; the message says why."""


class PatchTooLarge(PatchError):
    """The patch has too many operations, or copies too much (the apiserver answers 413)."""


MAX_JSON_PATCH_OPERATIONS = 10_000  # kube-apiserver's maxJSONPatchOperations
# kube-apiserver gives its JSON-patch library the request body limit as the most that all the
# `copy` operations of one patch may add together
MAX_JSON_PATCH_COPY_BYTES = 3 * 1024 * 1024


# --- JSON merge patch ------------------------------------------------------------------------

def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null removes a member, anything else replaces."""
    try:
        return _merge_patch(original, patch)
    except RecursionError:
        raise PatchError("the patch or the object nests too deeply") from None


def _merge_patch(original: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result = deep_copy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# --- JSON patch ------------------------------------------------------------------------------

def json_patch(original: Any, ops: Any) -> Any:
    """RFC 6902 operations applied to a copy of `original`. At most MAX_JSON_PATCH_OPERATIONS
    operations, and `copy` operations that add at most MAX_JSON_PATCH_COPY_BYTES of JSON in
    all (PatchTooLarge otherwise, raised before the copy that would pass the limit)."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise PatchTooLarge(f"the allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
                            f"got {len(ops)}")
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError(f"JSON patch operation {i} must be an object with an \"op\" member")
    try:
        doc = deep_copy(original)
        copied = 0
        for op in ops:
            if op["op"] == "copy":
                copied += _json_size_at(doc, op.get("from"))
                if copied > MAX_JSON_PATCH_COPY_BYTES:
                    raise PatchTooLarge(f"unable to complete the copy, the accumulated size increase of copy "
                                        f"is {copied}, exceeding the limit {MAX_JSON_PATCH_COPY_BYTES}")
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        return doc
    except PatchError:
        raise
    except jsonpatch.JsonPatchTestFailed as e:
        raise PatchError(f"JSON patch test operation failed: {e}") from None
    except jsonpatch.JsonPatchConflict as e:
        raise PatchError(f"JSON patch cannot be applied: {e}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise PatchError(f"invalid JSON patch: {e}") from None
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise PatchError(f"invalid JSON patch: {e}") from None
    except RecursionError:
        raise PatchError("the patch or the object nests too deeply") from None


def _json_size_at(doc: Any, pointer: Any) -> int:
    """Bytes of JSON at `pointer` in `doc`; 0 when it does not resolve (the copy then fails
    with the library's own message)."""
    if not isinstance(pointer, str):
        return 0
    try:
        value = jsonpointer.resolve_pointer(doc, pointer)
    except (jsonpointer.JsonPointerException, TypeError, KeyError, IndexError):
        return 0
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


# --- strategic merge patch: patch metadata ---------------------------------------------------

@dataclass(frozen=True)
class ListMeta:
    """How a list field is patched: merged (by `merge_key`, or as a set of scalars when the
    key is None) instead of replaced."""

    merge_key: str | None


Path = tuple[str, ...]

_METADATA: dict[Path, ListMeta] = {
    ("metadata", "finalizers"): ListMeta(None),
    ("metadata", "ownerReferences"): ListMeta("uid"),
}


def _container_lists(prefix: Path) -> dict[Path, ListMeta]:
    return {
        prefix + ("ports",): ListMeta("containerPort"),
        prefix + ("env",): ListMeta("name"),
        prefix + ("volumeMounts",): ListMeta("mountPath"),
        prefix + ("volumeDevices",): ListMeta("devicePath"),
    }


def _pod_spec_lists(prefix: Path) -> dict[Path, ListMeta]:
    out = {
        prefix + ("volumes",): ListMeta("name"),
        prefix + ("containers",): ListMeta("name"),
        prefix + ("initContainers",): ListMeta("name"),
        prefix + ("ephemeralContainers",): ListMeta("name"),
        prefix + ("imagePullSecrets",): ListMeta("name"),
        prefix + ("hostAliases",): ListMeta("ip"),
        prefix + ("topologySpreadConstraints",): ListMeta("topologyKey"),
        prefix + ("resourceClaims",): ListMeta("name"),
        prefix + ("schedulingGates",): ListMeta("name"),
    }
    for key in ("containers", "initContainers", "ephemeralContainers"):
        out.update(_container_lists(prefix + (key,)))
    return out


def _pod_template_lists(prefix: Path) -> dict[Path, ListMeta]:
    """A pod template's lists: its metadata's and its pod spec's."""
    out = {prefix + ("metadata",) + path[1:]: meta for path, meta in _METADATA.items()}
    out.update(_pod_spec_lists(prefix + ("spec",)))
    return out


# kind -> list field path (list items add no path element) -> merge metadata.
# Lists not named here are atomic: a patch replaces them whole (EndpointSlice endpoints,
# Endpoints subsets, externalIPs, clusterIPs, ipFamilies, taints, ...).
_KIND_LISTS: dict[str, dict[Path, ListMeta]] = {
    "Service": {
        ("spec", "ports"): ListMeta("port"),
        ("status", "conditions"): ListMeta("type"),
    },
    "Pod": {
        **_pod_spec_lists(("spec",)),
        ("status", "conditions"): ListMeta("type"),
        ("status", "podIPs"): ListMeta("ip"),
        ("status", "hostIPs"): ListMeta("ip"),
        ("status", "resourceClaimStatuses"): ListMeta("name"),
    },
    "Node": {
        ("spec", "podCIDRs"): ListMeta(None),
        ("status", "conditions"): ListMeta("type"),
        ("status", "addresses"): ListMeta("type"),
    },
    "Namespace": {("status", "conditions"): ListMeta("type")},
    "ServiceAccount": {("secrets",): ListMeta("name")},
    "Deployment": {**_pod_template_lists(("spec", "template")), ("status", "conditions"): ListMeta("type")},
    "ReplicaSet": {**_pod_template_lists(("spec", "template")), ("status", "conditions"): ListMeta("type")},
    "ReplicationController": {**_pod_template_lists(("spec", "template")), ("status", "conditions"): ListMeta("type")},
    "PodDisruptionBudget": {("status", "conditions"): ListMeta("type")},
    "Job": {**_pod_template_lists(("spec", "template")), ("status", "conditions"): ListMeta("type")},
    "CronJob": {**_pod_template_lists(("spec", "jobTemplate", "spec", "template")),
                **{("spec", "jobTemplate") + path: m for path, m in _METADATA.items()}},
    "DaemonSet": {**_pod_template_lists(("spec", "template")), ("status", "conditions"): ListMeta("type")},
    "StatefulSet": {**_pod_template_lists(("spec", "template")), ("status", "conditions"): ListMeta("type")},
}


def list_meta(resource: Resource | None, path: Path) -> ListMeta | None:
    """The merge metadata of the list at `path`, or None when the list is atomic."""
    if path in _METADATA:
        return _METADATA[path]
    if resource is None:
        return None
    return _KIND_LISTS.get(resource.kind, {}).get(path)


# --- strategic merge patch: the merge --------------------------------------------------------

def strategic_merge_patch(original: Any, patch: Any, resource: Resource | None) -> dict[str, Any]:
    """Apply a strategic merge patch for `resource`'s kind to a copy of `original`."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    try:
        base = deep_copy(original) if isinstance(original, dict) else {}
        result = _Merger(resource).merge_map(base, deep_copy(patch), ())
    except RecursionError:
        raise PatchError("the patch or the object nests too deeply") from None
    if not isinstance(result, dict):
        raise PatchError("a strategic merge patch may not replace the whole object with a non-object")
    return result


def _drop_nulls(value: Any) -> Any:
    """A patch value for a key the original lacks: nulls inside it delete nothing; drop them."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _key_of(item: Any, merge_key: str | None) -> Any:
    """The identity of a list item: its merge key value, or the scalar itself."""
    if merge_key is None:
        return _hashable(item)
    if not isinstance(item, dict):
        raise PatchError(f"list item {item!r} must be an object with merge key {merge_key!r}")
    if merge_key not in item:
        raise PatchError(f"map: {item} does not contain declared merge key: {merge_key}")
    return _hashable(item[merge_key])


def _hashable(v: Any) -> Any:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return (type(v).__name__, v) if isinstance(v, bool) else v


class _Merger:
    def __init__(self, resource: Resource | None):
        self.resource = resource

    # maps --------------------------------------------------------------------------------

    def merge_map(self, original: dict[str, Any], patch: dict[str, Any], path: Path) -> dict[str, Any]:
        if DIRECTIVE in patch:
            directive = patch[DIRECTIVE]
            if directive == "replace":
                rest = {k: v for k, v in patch.items() if k != DIRECTIVE}
                return self.merge_map({}, rest, path)
            if directive == "delete":
                return {}
            if directive != "merge":
                raise PatchError(f"Unknown patch type: {directive!r} in map: {_short(patch)}")
            patch = {k: v for k, v in patch.items() if k != DIRECTIVE}
        if RETAIN_KEYS in patch:
            keep = patch.pop(RETAIN_KEYS)
            if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
                raise PatchError(f"{RETAIN_KEYS} must be a list of strings")
            for k in list(patch):
                if not k.startswith("$") and patch[k] is not None and k not in keep:
                    raise PatchError(f"key {k!r} in the patch is not present in the {RETAIN_KEYS} list {keep}")
            for k in list(original):
                if k not in keep:
                    del original[k]
        self._apply_element_orders(original, patch, path)
        for key, value in patch.items():
            if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
                field = key[len(DELETE_FROM_PRIMITIVE_LIST):]
                self._delete_from_primitive_list(original, field, value)
                continue
            if key.startswith("$"):
                raise PatchError(f"unknown patch directive {key!r}")
            if value is None:
                original.pop(key, None)
                continue
            if key not in original:
                original[key] = self._fresh(value, path + (key,))
                continue
            have = original[key]
            if isinstance(have, dict) and isinstance(value, dict):
                original[key] = self.merge_map(have, value, path + (key,))
            elif isinstance(have, list) and isinstance(value, list):
                original[key] = self.merge_list(have, value, path + (key,))
            else:
                original[key] = self._fresh(value, path + (key,))
        return original

    def _fresh(self, value: Any, path: Path) -> Any:
        """A patch value stored where nothing was: directives resolved, nulls dropped."""
        if isinstance(value, dict):
            return self.merge_map({}, _drop_nulls(value), path)
        if isinstance(value, list):
            return self.merge_list([], _drop_nulls(value), path)
        return value

    def _delete_from_primitive_list(self, original: dict[str, Any], field: str, values: Any) -> None:
        if not isinstance(values, list):
            raise PatchError(f"{DELETE_FROM_PRIMITIVE_LIST}{field} must be a list")
        have = original.get(field)
        if not isinstance(have, list):
            return
        drop = {_hashable(v) for v in values}
        original[field] = [v for v in have if _hashable(v) not in drop]

    # lists -------------------------------------------------------------------------------

    def merge_list(self, original: list[Any], patch: list[Any], path: Path,
                   order: list[Any] | None = None) -> list[Any]:
        """Merge a patch list into a list; `order` (a $setElementOrder list) overrides the
        patch list's own order for the result."""
        meta = list_meta(self.resource, path)
        if meta is None:
            return [self._fresh(v, path) if isinstance(v, dict) else v for v in patch]
        key = meta.merge_key
        items: list[Any] = []
        for item in patch:
            if isinstance(item, dict) and DIRECTIVE in item:
                if key is None:
                    raise PatchError(f"list at {'.'.join(path)} holds scalars; got {_short(item)}")
                directive = item[DIRECTIVE]
                if directive == "delete":
                    target = _key_of(item, key)
                    original = [o for o in original if _key_of(o, key) != target]
                elif directive == "replace":
                    # a {"$patch": "replace"} item: the other items are the whole new list
                    return [self._fresh(i, path) for i in patch if not (isinstance(i, dict) and DIRECTIVE in i)]
                elif directive == "merge":
                    raise PatchError("merging lists cannot yet be specified in the patch")
                else:
                    raise PatchError(f"Unknown patch type: {directive!r} in list item {_short(item)}")
            elif key is None and isinstance(item, (dict, list)):
                raise PatchError(f"list at {'.'.join(path)} holds scalars; got {_short(item)}")
            else:
                items.append(item)
        merged = list(original)
        index: dict[Any, int] = {}
        for n, o in enumerate(merged):
            index.setdefault(_key_of(o, key), n)  # the first item with a key takes the merge
        for item in items:
            k = _key_of(item, key)
            if k in index:
                if key is not None:
                    n = index[k]
                    merged[n] = self.merge_map(merged[n] if isinstance(merged[n], dict) else {}, item, path)
            else:
                index[k] = len(merged)
                merged.append(self._fresh(item, path))
        return _normalize_order(merged, items if order is None else order, original, key)

    # $setElementOrder --------------------------------------------------------------------

    def _apply_element_orders(self, original: dict[str, Any], patch: dict[str, Any], path: Path) -> None:
        """Merge each list that has a $setElementOrder directive and order it by the
        directive. Consumes both patch keys."""
        for order_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
            field = order_key[len(SET_ELEMENT_ORDER):]
            order = patch.pop(order_key)
            if not isinstance(order, list):
                raise PatchError(f"{order_key} must be a list")
            field_path = path + (field,)
            have = original.get(field) if isinstance(original.get(field), list) else []
            patch_list = patch.pop(field, None)
            if patch_list is not None and not isinstance(patch_list, list):
                raise PatchError(f"{field} must be a list next to {order_key}")
            if list_meta(self.resource, field_path) is None:
                # an atomic list ignores ordering hints; the patch list (if any) replaces it
                if patch_list is not None:
                    original[field] = self.merge_list(have, patch_list, field_path)
                continue
            result = self.merge_list(have, patch_list or [], field_path, order=order)
            if result:
                original[field] = result
            else:
                original.pop(field, None)


def _normalize_order(merged: list[Any], order: list[Any], server: list[Any], key: str | None) -> list[Any]:
    """Kubernetes' normalizeElementOrder: items named in `order` come in that order; items
    only the server has keep their server order and are interleaved by server position."""
    wanted = {}
    for n, o in enumerate(order):
        wanted.setdefault(_key_of(o, key), n)
    in_order = sorted((m for m in merged if _key_of(m, key) in wanted), key=lambda m: wanted[_key_of(m, key)])
    server_pos = {}
    for n, o in enumerate(server):
        server_pos.setdefault(_key_of(o, key), n)
    server_only = sorted((m for m in merged if _key_of(m, key) not in wanted),
                         key=lambda m: server_pos.get(_key_of(m, key), len(server_pos)))
    return _merge_sorted(server_only, in_order, server_pos, key)


def _merge_sorted(server_only: list[Any], in_order: list[Any], server_pos: dict[Any, int],
                  key: str | None) -> list[Any]:
    """Interleave two ordered lists: a server-only item goes first when both items are on the
    server and it was earlier there; otherwise the patch-ordered item goes first."""
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(in_order):
        if j >= len(in_order):
            out.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            out.append(in_order[j])
            j += 1
        else:
            li = server_pos.get(_key_of(server_only[i], key), -1)
            ri = server_pos.get(_key_of(in_order[j], key), -1)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[i])
                i += 1
            else:
                out.append(in_order[j])
                j += 1
    return out


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 120 else text[:117] + "..."
