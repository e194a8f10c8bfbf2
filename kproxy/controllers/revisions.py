"""ControllerRevisions: the template history of DaemonSets and StatefulSets, as upstream's
pkg/controller/history. A revision holds a patch that replaces the owner's pod template; its
name is `<owner>-<hash of that patch>`, and its `revision` number orders the history
(`kubectl rollout history` lists them, `kubectl rollout undo` applies one's patch).

Pure part: `revision_data`, `new_revision`, `find_matching`, `prune`. `RevisionHistory` does
the I/O: it finds or creates the revision of the owner's current template (a rollback to an
older template renumbers that revision as the newest) and deletes revisions beyond
revisionHistoryLimit that no pod uses.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable

from kproxy.api.resources import CONTROLLER_REVISIONS, Resource
from kproxy.api import status as st
from kproxy.api.status import ApiError
from kproxy.controllers.ownership import Obj, claim, controller_ref, meta, owner_reference
from kproxy.controllers.rollout import LAST_APPLIED, template_hash

HASH_LABEL = "controller-revision-hash"


def revision_data(owner: Obj) -> Obj:
    """The patch a revision stores: the owner's pod template, replacing the current one."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    return {"spec": {"template": {**template, "$patch": "replace"}}}


def revision_hash(owner: Obj, collision_count: int = 0) -> str:
    return template_hash(revision_data(owner), collision_count)


def new_revision(owner: Obj, resource: Resource, number: int, collision_count: int = 0) -> Obj:
    """The ControllerRevision of the owner's current template: the template's labels (so the
    owner's selector finds it) plus the hash label, the owner's annotations (change-cause)."""
    md = meta(owner)
    labels = dict((((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = revision_hash(owner, collision_count)
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if k != LAST_APPLIED}
    out_md: dict[str, Any] = {
        "name": f"{md['name']}-{labels[HASH_LABEL]}", "namespace": md["namespace"], "labels": labels,
        "ownerReferences": [owner_reference(owner, resource.group_version, resource.kind)]}
    if annotations:
        out_md["annotations"] = annotations
    return {"apiVersion": CONTROLLER_REVISIONS.group_version, "kind": CONTROLLER_REVISIONS.kind,
            "metadata": out_md, "data": revision_data(owner), "revision": number}


def revision_number(rev: Obj) -> int:
    value = rev.get("revision")
    return value if isinstance(value, int) else 0


def find_matching(owner: Obj, revisions: Iterable[Obj]) -> Obj | None:
    """The newest revision holding the owner's current template."""
    data = revision_data(owner)
    matching = [r for r in revisions if r.get("data") == data]
    return max(matching, key=revision_number) if matching else None


def prune(revisions: list[Obj], keep: set[str], limit: int) -> list[Obj]:
    """Revisions to delete: the oldest beyond `limit`, never one named in `keep` (the current
    and update revisions, and those live pods still run)."""
    candidates = sorted((r for r in revisions if meta(r).get("name") not in keep), key=revision_number)
    return candidates[:max(0, len(candidates) - limit)]


class RevisionHistory:
    """The I/O side: ControllerRevisions of owners of one kind, through an informer cache."""

    def __init__(self, client: Any, informer: Any, owner_resource: Resource):
        self.client = client
        self.informer = informer
        self.owner_resource = owner_resource

    def owned(self, owner: Obj) -> list[Obj]:
        """The owner's revisions (claimed by controller reference and selector)."""
        return claim(owner, self.informer.list(meta(owner).get("namespace"))).owned

    async def current(self, owner: Obj, revisions: list[Obj]) -> tuple[Obj, int]:
        """The revision of the owner's current template, created (or renumbered as the newest
        when an older template came back) as needed; and the collision count used."""
        newest = max((revision_number(r) for r in revisions), default=0)
        found = find_matching(owner, revisions)
        collisions = int((owner.get("status") or {}).get("collisionCount") or 0)
        if found is not None:
            if revision_number(found) < newest:
                found = await self.client.update(CONTROLLER_REVISIONS, {**found, "revision": newest + 1})
            return found, collisions
        for _ in range(5):
            rev = new_revision(owner, self.owner_resource, newest + 1, collisions)
            try:
                return await self.client.create(CONTROLLER_REVISIONS, rev, meta(owner)["namespace"]), collisions
            except ApiError as exc:
                if exc.code != 409:
                    raise
            existing = await self.client.get(CONTROLLER_REVISIONS, rev["metadata"]["name"], meta(owner)["namespace"])
            ours = (controller_ref(existing) or {}).get("uid") == meta(owner)["uid"]
            if ours and existing.get("data") == rev["data"]:
                return existing, collisions
            collisions += 1  # a different template (or owner) has this name: hash again
        raise st.conflict(CONTROLLER_REVISIONS.plural, meta(owner)["name"], "no free ControllerRevision name",
                          CONTROLLER_REVISIONS.group)

    async def prune(self, owner: Obj, revisions: list[Obj], keep: set[str]) -> None:
        limit = (owner.get("spec") or {}).get("revisionHistoryLimit")
        for rev in prune(revisions, keep, limit if isinstance(limit, int) else 10):
            try:
                await self.client.delete(CONTROLLER_REVISIONS, meta(rev)["name"], meta(rev)["namespace"],
                                         uid=meta(rev).get("uid"))
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
