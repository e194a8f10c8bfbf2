"""Matching rules shared by filters and scores: taints against tolerations, and node selector
terms against a node's labels and name (k8s.io/component-helpers' semantics)."""
from __future__ import annotations

from typing import Any, Mapping

from kproxy.api import selectors as sel
from kproxy.api.selectors import Requirement, SelectorError

_NODE_SELECTOR_OPS = {"In": sel.IN, "NotIn": sel.NOT_IN, "Exists": sel.EXISTS,
                      "DoesNotExist": sel.DOES_NOT_EXIST, "Gt": sel.GREATER_THAN, "Lt": sel.LESS_THAN}


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """v1.Toleration.ToleratesTaint: an empty effect or key is a wildcard; Exists ignores the value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerated(tolerations: tuple[Mapping[str, Any], ...], taint: Mapping[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    """A NodeSelectorTerm: every expression and field requirement holds; an empty term matches
    nothing, and so does a term that does not parse (as upstream's NodeSelector does)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    try:
        for e in exprs:
            op = _NODE_SELECTOR_OPS[e["operator"]]
            if not Requirement(e["key"], op, tuple(e.get("values") or ())).matches(labels):
                return False
        for f in fields:
            if f.get("key") != "metadata.name":
                return False
            op = _NODE_SELECTOR_OPS[f["operator"]]
            if not Requirement("metadata.name", op, tuple(f.get("values") or ())).matches(
                    {"metadata.name": name}):
                return False
    except (KeyError, TypeError, ValueError, IndexError, SelectorError):
        return False
    return True


def selector_matches(node_selector: Mapping[str, str], required_terms: tuple[Mapping[str, Any], ...] | None,
                     labels: Mapping[str, str], name: str) -> bool:
    """spec.nodeSelector and required node affinity together (the NodeAffinity filter): every
    nodeSelector label equal, and one of the terms matching when there are terms."""
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    return required_terms is None or any(term_matches(t, labels, name) for t in required_terms)
