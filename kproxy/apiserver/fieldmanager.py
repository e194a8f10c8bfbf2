"""Field ownership as kube-apiserver's server-side apply keeps it (sigs.k8s.io/structured-merge-diff
and k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager): pure functions over objects (dicts)
and the served kinds' schema (schema.py); no I/O, the time is passed in.

A field set is a frozenset of paths; a path is a tuple of elements written as in FieldsV1:
`f:<field>`, `k:<json of the list-map keys>` (an item of an associative list), `v:<json>` (an
item of a set list). `encode_fields`/`decode_fields` convert to and from FieldsV1 (`.` marks a
path that is itself a member and has children).

Guarantees:
- `applied_fields(config)` is what an applier owns: every leaf, every list item and map entry,
  empty maps and lists and null values; struct fields with children are not members themselves.
- `compare(old, new)` reports added, modified and removed paths: containers that appear or go
  are reported themselves (so an Update owns `f:labels` with `.`), leaves when their value differs.
- `apply(...)` merges an applied configuration into the live object, raises ApplyConflict when
  it changes a field another manager owns (unless forced: then they lose it), and removes what
  the applier applied before but no longer does and nobody else owns. Applying the same
  configuration twice changes nothing, the entry's time included.
- `update(...)` records an Update (create, PUT, non-apply PATCH): the writer gains what it
  added or changed, others lose what it changed.
"""
from __future__ import annotations

import copy
import functools
import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable

from kproxy.apiserver import schema as S

Path = tuple[str, ...]
FieldSet = frozenset[Path]

APPLY, UPDATE = "Apply", "Update"
FIELDS_TYPE = "FieldsV1"
MAX_MANAGER_LENGTH = 128
# The manager kubectl uses for server-side apply; only its applies take over what client-side
# apply (the last-applied-configuration annotation) set, as kube-apiserver's lastAppliedManager.
KUBECTL_MANAGER = "kubectl"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# list-map key fields a configuration may omit: their schema default stands in (as upstream)
KEY_DEFAULTS = {"protocol": "TCP"}
# never owned by anyone (kube-apiserver's stripMetaManager)
_STRIPPED: frozenset[Path] = frozenset({
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *(("f:metadata", "f:" + k) for k in ("name", "namespace", "creationTimestamp", "selfLink", "uid",
                                         "clusterName", "generation", "managedFields", "resourceVersion")),
})
_MISSING = object()
# At most this many Update entries; the oldest are merged into one "ancient-changes" entry
# (kube-apiserver's capManagersManager), so many one-off writers cannot grow an object forever.
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
BEFORE_FIRST_APPLY = "before-first-apply"


class BadConfig(ValueError):
    """An applied configuration that cannot be a field set (two items with one key)."""


class ApplyConflict(Exception):
    """An apply would change fields other managers own: [(printed manager, path)], sorted."""

    def __init__(self, conflicts: list[tuple[str, Path]]):
        super().__init__(f"{len(conflicts)} conflict(s)")
        self.conflicts = conflicts


# --- managers and their names ----------------------------------------------------------------

def manager_problems(name: str) -> list[tuple[str, str]]:
    """Why `name` cannot be a fieldManager, as (cause reason, message) pairs in kube-apiserver's
    words (ValidateFieldManager); empty when it can."""
    out = []
    if len(name.encode("utf-8")) > MAX_MANAGER_LENGTH:
        out.append(("FieldValueTooLong", f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"))
    offset = 0
    for c in name:
        if not _printable(c):
            message = f"Invalid value: {json.dumps(name)}: invalid character U+{ord(c):04X} (at position {offset})"
            out.append(("FieldValueInvalid", message))
        offset += len(c.encode("utf-8"))
    return out


def manager_from_user_agent(user_agent: str) -> str:
    """The default manager of a write without fieldManager: the user agent up to its first
    "/", printable characters only, at most 128 bytes ("kubectl-edit/v1.32.0 (linux...)" ->
    "kubectl-edit")."""
    out, size = [], 0
    for c in user_agent.split("/", 1)[0]:
        if not _printable(c):
            continue
        size += len(c.encode("utf-8"))
        if size > MAX_MANAGER_LENGTH:
            break
        out.append(c)
    return "".join(out)


def _printable(c: str) -> bool:
    """Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return c == " " or unicodedata.category(c)[0] in "LMNPS"


# --- the schema ------------------------------------------------------------------------------

def _resolve(t: S.Type) -> S.Type:
    while isinstance(t, S.Ref):
        t = S.DEFINITIONS.get(t.name, S.OPEN)
    return t


def _field_type(t: S.Type, key: str) -> tuple[S.Type, bool]:
    """The type of `key` in a map-like type and whether it is a declared struct field (those
    are not members themselves when they have children)."""
    if isinstance(t, S.Struct):
        if key in t.fields:
            return t.fields[key], True
        return S.OPEN, False
    if isinstance(t, S.MapOf):
        return t.value, False
    return S.OPEN, True  # an undescribed struct: its keys are fields


def _is_map(t: S.Type) -> bool:
    """A map walked field by field (an atomic map or struct is one leaf)."""
    return isinstance(t, S.Open) or (isinstance(t, (S.Struct, S.MapOf)) and not t.atomic)


def _granular_list(t: S.Type) -> bool:
    return isinstance(t, S.ListOf) and t.list_type in ("map", "set")


# one encoder for every path element (json.dumps with options builds a new one per call)
_dumps = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode


def item_element(t: S.ListOf, item: Any) -> str:
    """The path element of one item of a granular list."""
    if t.list_type == "map" and isinstance(item, dict):
        keys = {}
        for k in t.map_keys:
            if k in item:
                keys[k] = item[k]
            elif k in KEY_DEFAULTS:
                keys[k] = KEY_DEFAULTS[k]
        return "k:" + _dumps(keys)
    return "v:" + _dumps(item)


@functools.cache
def kind_type(resource: Any) -> S.Type:
    """The schema of a served resource's kind (built once per resource)."""
    return S.kind_schema(resource)


# --- FieldsV1 --------------------------------------------------------------------------------

_ORDER = {"f": 0, "k": 1, "v": 2, "i": 3}


def _sort_key(element: str) -> tuple[int, str]:
    return _ORDER.get(element[:1], 9), element[2:]


def encode_fields(fields: Iterable[Path]) -> dict[str, Any]:
    """FieldsV1 of a field set: nested objects, `.` for a member that has children."""
    root: dict[str, Any] = {}
    for path in fields:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _finish(root)


def _finish(node: dict[str, Any]) -> dict[str, Any]:
    children = sorted((k for k in node if k != "."), key=_sort_key)
    if not children:
        return {}
    out: dict[str, Any] = {".": {}} if "." in node else {}
    for k in children:
        out[k] = _finish(node[k])
    return out


def decode_fields(fields_v1: Any) -> FieldSet:
    """The field set FieldsV1 describes; ValueError when it is not FieldsV1."""
    out: set[Path] = set()

    def walk(node: Any, path: Path) -> None:
        if not isinstance(node, dict):
            raise ValueError(f"expected an object at {'.'.join(path) or 'the top'}")
        if path and (not node or "." in node):
            out.add(path)
        for k, v in node.items():
            if k == ".":
                if v != {}:
                    raise ValueError("'.' must be an empty object")
                continue
            if not isinstance(k, str) or k[:2] not in ("f:", "k:", "v:", "i:"):
                raise ValueError(f"unknown path element {k!r}")
            walk(v, path + (k,))

    walk(fields_v1, ())
    return frozenset(out)


# --- field sets of objects -------------------------------------------------------------------

def applied_fields(config: Any, t: S.Type) -> FieldSet:
    """The fields an applied configuration sets (structured-merge-diff's ToFieldSet); BadConfig
    when a list holds two items with one key."""
    out: set[Path] = set()
    _collect(config, t, (), out)
    return frozenset(out) - _STRIPPED


def _collect(v: Any, t: S.Type, path: Path, out: set[Path]) -> None:
    t = _resolve(t)
    if isinstance(t, S.ListOf) and _granular_list(t) and isinstance(v, list) and v:  # [] is a leaf, as {}
        for item in v:
            child = path + (item_element(t, item),)
            if child in out:
                raise BadConfig(f"{path_string(path)}: duplicate entries for key {path_string(child[-1:])}")
            _collect(item, t.item, child, out)
            out.add(child)
        return
    if _is_map(t) and isinstance(v, dict) and v:
        for k, val in v.items():
            ft, declared = _field_type(t, k)
            child = path + ("f:" + k,)
            _collect(val, ft, child, out)
            if not declared:
                out.add(child)
        return
    if path:
        out.add(path)


@dataclass(frozen=True)
class Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    @property
    def changed(self) -> FieldSet:
        return self.added | self.modified


def compare(old: Any, new: Any, t: S.Type) -> Comparison:
    """What changed from `old` to `new` (structured-merge-diff's Compare)."""
    added: set[Path] = set()
    modified: set[Path] = set()
    removed: set[Path] = set()
    _compare(old, new, t, (), added, modified, removed)
    return Comparison(frozenset(added) - _STRIPPED, frozenset(modified) - _STRIPPED, frozenset(removed) - _STRIPPED)


def _compare(old: Any, new: Any, t: S.Type, path: Path, added: set[Path], modified: set[Path],
             removed: set[Path]) -> None:
    if old is not _MISSING and new is not _MISSING and type(old) is type(new) and old == new:
        return  # equal subtrees hold no change (a C-speed check that skips most of an object)
    t = _resolve(t)
    values = [v for v in (old, new) if v is not _MISSING]
    if _is_map(t) and all(isinstance(v, dict) for v in values) and any(values):
        if old is _MISSING:
            added.add(path)
        elif new is _MISSING:
            removed.add(path)
        o = old if isinstance(old, dict) else {}
        n = new if isinstance(new, dict) else {}
        for k in {**o, **n}:
            ft, _ = _field_type(t, k)
            _compare(o.get(k, _MISSING), n.get(k, _MISSING), ft, path + ("f:" + k,), added, modified, removed)
        return
    if isinstance(t, S.ListOf) and _granular_list(t) and all(isinstance(v, list) for v in values) and any(values):
        if old is _MISSING:
            added.add(path)
        elif new is _MISSING:
            removed.add(path)
        o_items = _index(t, old if isinstance(old, list) else [])
        n_items = _index(t, new if isinstance(new, list) else [])
        for pe in {**n_items, **o_items}:
            _compare(o_items.get(pe, _MISSING), n_items.get(pe, _MISSING), t.item, path + (pe,),
                     added, modified, removed)
        return
    if not path:
        return
    if old is _MISSING:
        added.add(path)
    elif new is _MISSING:
        removed.add(path)
    elif old != new or type(old) is not type(new):
        modified.add(path)


def _index(t: S.ListOf, items: list[Any]) -> dict[str, Any]:
    """Items by path element; the first of repeated items counts."""
    out: dict[str, Any] = {}
    for item in items:
        out.setdefault(item_element(t, item), item)
    return out


# --- merging an applied configuration --------------------------------------------------------

def merge(live: Any, config: Any, t: S.Type) -> Any:
    """`config` merged into `live`: maps field by field, granular lists item by item (live
    order, new items after), everything else replaced. A null in `config` removes the field."""
    t = _resolve(t)
    if _is_map(t) and isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for k, v in config.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v, _field_type(t, k)[0])
            else:
                out[k] = _without_nulls(v)
        return out
    if isinstance(t, S.ListOf) and _granular_list(t) and isinstance(live, list) and isinstance(config, list):
        out_list = list(live)
        where: dict[str, int] = {}
        for n, item in enumerate(out_list):
            where.setdefault(item_element(t, item), n)
        for item in config:
            pe = item_element(t, item)
            if pe in where:
                out_list[where[pe]] = merge(out_list[where[pe]], item, t.item)
            else:
                where[pe] = len(out_list)
                out_list.append(_without_nulls(item))
        return out_list
    return _without_nulls(config)


def _without_nulls(v: Any) -> Any:
    """A copy of `v` without null map values (JSON scalars are immutable: shared)."""
    if isinstance(v, dict):
        return {k: _without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_nulls(x) for x in v]
    return v


def remove_paths(obj: dict[str, Any], paths: Iterable[Path], t: S.Type, keep: FieldSet) -> dict[str, Any]:
    """`obj` without the fields at `paths` (a copy; `obj` itself when there are none); a path
    under which something in `keep` lies loses only what is not kept. A map left empty by a
    removal goes too, unless kept."""
    paths = list(paths)
    if not paths:
        return obj
    out = copy.deepcopy(obj)
    keep_prefixes = {p[:n] for p in keep for n in range(1, len(p) + 1)}
    for path in sorted(paths, key=len):  # an item goes whole, before its key fields could
        if path in keep_prefixes:
            continue
        _remove(out, path, t, keep_prefixes)
    return out


def _remove(obj: Any, path: Path, t: S.Type, keep_prefixes: set[Path]) -> None:
    trail: list[tuple[Any, Any]] = []  # (container, key or index) down to the field
    node, nt = obj, _resolve(t)
    for element in path:
        if element.startswith("f:") and isinstance(node, dict):
            key = element[2:]
            if key not in node:
                return
            trail.append((node, key))
            node, nt = node[key], _resolve(_field_type(nt, key)[0])
        elif isinstance(nt, S.ListOf) and isinstance(node, list):
            found = next((n for n, item in enumerate(node) if item_element(nt, item) == element), None)
            if found is None:
                return
            trail.append((node, found))
            node, nt = node[found], _resolve(nt.item)
        else:
            return
    for depth in range(len(trail) - 1, -1, -1):
        container, key = trail[depth]
        del container[key]
        parent_path = path[:depth]
        if container or depth <= 1 or parent_path in keep_prefixes:
            break  # top-level sections (spec, metadata, ...) stay even when empty


# --- managedFields entries -------------------------------------------------------------------

@dataclass(frozen=True)
class Manager:
    """Who writes: the manager's name, the operation, and the subresource ("" for the object)."""
    name: str
    operation: str = UPDATE
    subresource: str = ""


@dataclass
class Entry:
    manager: Manager
    api_version: str
    time: str | None
    fields: FieldSet


def decode_managed(entries: Any) -> list[Entry] | None:
    """The entries of metadata.managedFields; None when they are not valid managedFields."""
    if not isinstance(entries, list):
        return None
    out = []
    try:
        for e in entries:
            if not isinstance(e, dict) or e.get("operation") not in (APPLY, UPDATE):
                return None
            if e.get("fieldsType", FIELDS_TYPE) != FIELDS_TYPE:
                return None
            name = e.get("manager", "")
            if not isinstance(name, str):
                return None
            sub = e.get("subresource", "")
            out.append(Entry(Manager(name, e["operation"], sub if isinstance(sub, str) else ""),
                             str(e.get("apiVersion", "")), _text_or_none(e.get("time")), decode_fields(e.get("fieldsV1", {}))))
    except ValueError:
        return None
    return out


def _text_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def encode_managed(entries: list[Entry]) -> list[dict[str, Any]]:
    """managedFields as kube-apiserver writes them: Apply before Update, then by time, manager,
    apiVersion and subresource; entries that own nothing are left out."""
    live = [e for e in entries if e.fields]
    live.sort(key=lambda e: (e.manager.operation, e.time or "", e.manager.name, e.api_version, e.manager.subresource))
    out = []
    for e in live:
        # omitempty, as the Go type: a client without User-Agent or fieldManager has no name
        d: dict[str, Any] = {"manager": e.manager.name} if e.manager.name else {}
        d.update(operation=e.manager.operation, apiVersion=e.api_version)
        if e.time:
            d["time"] = e.time
        d["fieldsType"] = FIELDS_TYPE
        d["fieldsV1"] = encode_fields(e.fields)
        if e.manager.subresource:
            d["subresource"] = e.manager.subresource
        out.append(d)
    return out


def _entries_of(obj: Any) -> list[Entry]:
    m = obj.get("metadata") if isinstance(obj, dict) else None
    found = decode_managed((m or {}).get("managedFields") or [])
    return found or []


def _base_entries(old: Any, new: Any) -> list[Entry]:
    """The entries an update starts from: the request's own managedFields when it sends valid,
    non-empty ones, none when it resets them ([] or [{}]), else the live object's."""
    sent = (new.get("metadata") or {}).get("managedFields") if isinstance(new, dict) else None
    if isinstance(sent, list) and (sent == [] or sent == [{}]):
        return []
    decoded = decode_managed(sent) if sent else None
    if decoded:
        return decoded
    return _entries_of(old)


def _set_managed(obj: dict[str, Any], entries: list[Entry]) -> dict[str, Any]:
    out = dict(obj)
    m = dict(out.get("metadata") or {})
    encoded = encode_managed(entries)
    if encoded:
        m["managedFields"] = encoded
    else:
        m.pop("managedFields", None)
    out["metadata"] = m
    return out


def _without_managed(obj: Any) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict):
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return out


def _find(entries: list[Entry], manager: Manager) -> Entry | None:
    return next((e for e in entries if e.manager == manager), None)


def _scoped(fields: FieldSet, subresource: str, has_status: bool) -> FieldSet:
    """What a write to `subresource` may own: the status only through the status subresource
    of kinds that have one, everything else only through the object (upstream's reset fields)."""
    if not has_status:
        return fields
    if subresource == "status":
        return frozenset(p for p in fields if p[0] == "f:status")
    return frozenset(p for p in fields if p[0] != "f:status")


def _config_in_scope(config: dict[str, Any], subresource: str, has_status: bool) -> dict[str, Any]:
    """The part of an applied configuration the write may change: what the subresource does
    not write is dropped before the merge, so it neither conflicts nor is owned."""
    if not has_status:
        return config
    if subresource == "status":
        m = config.get("metadata")
        m = m if isinstance(m, dict) else {}
        out = {k: v for k, v in config.items() if k in ("apiVersion", "kind", "status")}
        out["metadata"] = {k: v for k, v in m.items() if k in ("name", "namespace")}
        return out
    return {k: v for k, v in config.items() if k != "status"}


def update(old: dict[str, Any] | None, new: dict[str, Any], t: S.Type, manager: Manager, api_version: str,
           now: str, has_status: bool = False) -> dict[str, Any]:
    """`new` with the managedFields after an Update by `manager` (old None: a create)."""
    entries = _base_entries(old or {}, new)
    before = old if old is not None else _create_skeleton(t)
    cmp = compare(_without_managed(before), _without_managed(new), t)
    changed = _scoped(cmp.changed, manager.subresource, has_status)
    if changed or cmp.removed:
        for e in entries:
            if e.manager != manager:
                e.fields = e.fields - changed
        mine = _find(entries, manager)
        if mine is None:
            mine = Entry(manager, api_version, now, frozenset())
            entries.append(mine)
        grown = (mine.fields - cmp.removed) | changed
        if changed or grown != mine.fields:
            mine.time = now
        mine.fields, mine.api_version = grown, api_version
    return _set_managed(new, _cap_updates(entries))


def _cap_updates(entries: list[Entry]) -> list[Entry]:
    """At most MAX_UPDATE_MANAGERS Update entries: the oldest (and an earlier bucket) merged
    into the ANCIENT_CHANGES entry, which takes the newest time among them."""
    updates = sorted((e for e in entries if e.manager.operation == UPDATE and e.fields),
                     key=lambda e: (e.time or "", e.manager.name))
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return entries
    bucket = Manager(ANCIENT_CHANGES, UPDATE)
    oldest = updates[:len(updates) - MAX_UPDATE_MANAGERS + 1]
    merged = oldest + [e for e in updates if e.manager == bucket and e not in oldest]
    fields = frozenset().union(*(e.fields for e in merged))
    newest = max(merged, key=lambda e: e.time or "")
    kept = [e for e in entries if all(e is not m for m in merged)]
    return kept + [Entry(bucket, newest.api_version, newest.time, fields)]


def _create_skeleton(t: S.Type) -> dict[str, Any]:
    """The object a create is compared with: upstream compares with an empty typed object,
    whose metadata and top-level spec and status structs already exist."""
    t = _resolve(t)
    out: dict[str, Any] = {"metadata": {}}
    if isinstance(t, S.Struct):
        for k in ("spec", "status"):
            if k in t.fields and isinstance(_resolve(t.fields[k]), S.Struct):
                out[k] = {}
    return out


def apply(live: dict[str, Any] | None, config: dict[str, Any], t: S.Type, manager: Manager, api_version: str,
          now: str, force: bool = False, has_status: bool = False) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live` (None: it does not exist yet),
    with its managedFields. Raises ApplyConflict (unless `force`)."""
    base = live if live is not None else {}
    entries = _entries_of(base)
    if live is not None and not entries:
        # an object nobody is recorded for (written before managedFields were kept): what it
        # holds belongs to "before-first-apply", as upstream, so the apply can conflict with it
        base = update(None, live, t, Manager(BEFORE_FIRST_APPLY), api_version, now, has_status)
        entries = _entries_of(base)
    config = _config_in_scope(_without_managed(config), manager.subresource, has_status)
    mine_fields = applied_fields(config, t)
    merged = merge(_without_managed(base), config, t)
    cmp = compare(_without_managed(base), merged, t)
    conflicts: list[tuple[str, Path]] = []
    for e in entries:
        if e.manager != manager:
            for path in e.fields & cmp.changed:
                conflicts.append((printed_manager(e.manager, e.api_version), path))
    if conflicts and not force:
        allowed = _client_side_applied(base, t) if manager.name == KUBECTL_MANAGER else frozenset()
        rest = [c for c in conflicts if c[1] not in allowed]
        if rest:
            raise ApplyConflict(sorted(rest))
    taken = frozenset(p for _, p in conflicts)
    for e in entries:
        if e.manager != manager:
            e.fields = e.fields - taken
    mine = _find(entries, manager)
    previous = mine.fields if mine is not None else frozenset()
    others = frozenset().union(*(e.fields for e in entries if e.manager != manager))
    result = remove_paths(merged, previous - mine_fields - others, t, mine_fields | others)
    result = _keep_last_applied(base, result, config, manager)
    if mine is None:
        mine = Entry(manager, api_version, now, mine_fields)
        entries.append(mine)
    elif mine_fields != mine.fields or result != _without_managed(base):
        mine.time = now
    mine.fields, mine.api_version = mine_fields, api_version
    return _set_managed(result, entries)


def _client_side_applied(live: dict[str, Any], t: S.Type) -> FieldSet:
    """The fields client-side apply set (its last-applied annotation): kubectl's first
    server-side apply takes them over without conflicts, as upstream migrates them."""
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return frozenset()
    try:
        last = json.loads(text)
    except ValueError:
        return frozenset()
    try:
        return applied_fields(last, t) if isinstance(last, dict) else frozenset()
    except BadConfig:
        return frozenset()  # a broken annotation allows nothing


def _keep_last_applied(live: dict[str, Any], result: dict[str, Any], config: dict[str, Any],
                       manager: Manager) -> dict[str, Any]:
    """kubectl's server-side apply keeps an existing last-applied annotation true to what it
    applies, so a later client-side apply still computes the right patch (upstream's
    lastAppliedUpdater)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    if manager.name != KUBECTL_MANAGER or manager.operation != APPLY or LAST_APPLIED not in annotations:
        return result
    applied = copy.deepcopy(config)
    am = applied.get("metadata")
    if isinstance(am, dict) and isinstance(am.get("annotations"), dict):
        am["annotations"] = {k: v for k, v in am["annotations"].items() if k != LAST_APPLIED}
        if not am["annotations"]:
            del am["annotations"]
    m = result.setdefault("metadata", {})
    m.setdefault("annotations", {})[LAST_APPLIED] = json.dumps(applied, separators=(",", ":"))
    return result


def conflict_message(conflicts: list[tuple[str, Path]]) -> tuple[str, list[dict[str, str]]]:
    """The 409 message and causes kube-apiserver gives for apply conflicts (managers as
    `printed_manager` shows them)."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path_string(path)}
              for who, path in conflicts]
    if len(conflicts) == 1:
        who, path = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {who}: {path_string(path)}", causes
    lines: list[str] = []
    for who in sorted({w for w, _ in conflicts}):
        lines.append(f"conflicts with {who}:")
        lines.extend(f"- {path_string(p)}" for w, p in conflicts if w == who)
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines), causes


def printed_manager(manager: Manager, api_version: str) -> str:
    """A manager as upstream names it in conflicts: "name" [with subresource "s"] [using v1]."""
    out = json.dumps(manager.name)
    if manager.subresource:
        out += f" with subresource {json.dumps(manager.subresource)}"
    if manager.operation == UPDATE:
        out += f" using {api_version}"
    return out


def path_string(path: Path) -> str:
    """A path as upstream prints it: .spec.ports[port=80,protocol="TCP"].targetPort"""
    out = []
    for element in path:
        kind, rest = element[:2], element[2:]
        if kind == "f:":
            out.append("." + rest)
        elif kind == "k:":
            try:
                keys = json.loads(rest)
                out.append("[" + ",".join(f"{k}={_dumps(v)}" for k, v in keys.items()) + "]")
            except ValueError:
                out.append("[" + rest + "]")
        elif kind == "v:":
            out.append("[=" + rest + "]")
        else:
            out.append("[" + rest + "]")
    return "".join(out)


# --- per resource ----------------------------------------------------------------------------

def record_update(resource: Any, old: dict[str, Any] | None, new: dict[str, Any], manager: Manager,
                  now: str) -> dict[str, Any]:
    """`update` for a served resource (its schema, apiVersion and status subresource)."""
    return update(old, new, kind_type(resource), manager, resource.group_version, now, resource.status_subresource)


def record_apply(resource: Any, live: dict[str, Any] | None, config: dict[str, Any], manager: Manager,
                 now: str, force: bool) -> dict[str, Any]:
    """`apply` for a served resource."""
    return apply(live, config, kind_type(resource), manager, resource.group_version, now, force,
                 resource.status_subresource)
