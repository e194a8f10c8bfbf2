"""Controller references and the pods a workload controller owns (pure, no I/O), as
client-go's ControllerRefManager: an object has at most one controller (the ownerReference
with controller=true); a controller adopts matching orphans and releases the objects it owns
that no longer match its selector.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from kproxy.api.selectors import LabelSelector, SelectorError, of_workload

Obj = dict[str, Any]


def meta(obj: Obj) -> dict[str, Any]:
    return obj.get("metadata") or {}


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    """The ownerReference with controller=true, or None."""
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def owner_reference(owner: Obj, api_version: str, kind: str) -> dict[str, Any]:
    """The controller reference an owned object carries: it blocks the owner's foreground
    deletion until the garbage collector has removed the owned object."""
    return {"apiVersion": api_version, "kind": kind, "name": meta(owner)["name"], "uid": meta(owner)["uid"],
            "controller": True, "blockOwnerDeletion": True}


def selector_of(obj: Obj) -> LabelSelector:
    """The object's spec.selector; one that does not parse selects nothing."""
    try:
        return of_workload(obj)
    except SelectorError:
        return LabelSelector(nothing=True)


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


@dataclass
class Claim:
    """The outcome of claiming: what is ours now, what to adopt and what to release."""
    owned: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def claim(owner: Obj, candidates: Iterable[Obj], *, eligible: Callable[[Obj], bool] = lambda o: True) -> Claim:
    """Sorts `candidates` (objects of the owner's namespace) into owned (by controller ref and
    still matching), to adopt (orphans that match, not being deleted, while the owner is not
    being deleted) and to release (ours but no longer matching). `owned` includes `adopt`."""
    uid = meta(owner).get("uid")
    sel = selector_of(owner)
    deleting = is_deleting(owner)
    out = Claim()
    for obj in candidates:
        ref = controller_ref(obj)
        matches = sel.matches(meta(obj).get("labels"))
        if ref is not None:
            if ref.get("uid") != uid:
                continue  # someone else's
            if matches or deleting:
                out.owned.append(obj)
            elif not is_deleting(obj):
                out.release.append(obj)
        elif matches and not deleting and not is_deleting(obj) and eligible(obj):
            out.adopt.append(obj)
            out.owned.append(obj)
    return out


def _with_uid(obj: Obj, md: dict[str, Any]) -> dict[str, Any]:
    if meta(obj).get("uid"):
        md["uid"] = meta(obj)["uid"]
    return {"metadata": md}


def adopt_patch(obj: Obj, ref: dict[str, Any]) -> dict[str, Any]:
    """Strategic merge patch adding the controller reference (ownerReferences merge by uid)."""
    return _with_uid(obj, {"ownerReferences": [ref]})


def release_patch(obj: Obj, owner_uid: str) -> dict[str, Any]:
    """Strategic merge patch removing the owner's reference."""
    return _with_uid(obj, {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}]})
