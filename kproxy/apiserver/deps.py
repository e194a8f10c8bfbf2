"""The one seam between the apiserver and its sibling packages (kproxy.api, kproxy.store).

Each function forwards to the team's real implementation. While a sibling module has not
landed yet, a deliberately small fallback keeps the server usable; every fallback is logged
once at startup by `report_fallbacks()` so it is never silently in effect.
"""
from __future__ import annotations

import copy
import importlib
import logging
from typing import Any

from kproxy.api.resources import Resource
from kproxy.store.base import Store

log = logging.getLogger(__name__)


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


class Deps:
    """The sibling modules, resolved once. Attributes are None where a module is missing."""

    def __init__(self) -> None:
        self.selectors = _optional("kproxy.api.selectors")
        self.validation = _optional("kproxy.api.validation")
        self.defaults = _optional("kproxy.api.defaults")
        self.patch = _optional("kproxy.api.patch")

    def report_fallbacks(self) -> None:
        for name in ("selectors", "validation", "defaults", "patch"):
            if getattr(self, name) is None:
                log.warning("kproxy.api.%s is not available: using the apiserver's minimal fallback", name)

    # --- selectors -------------------------------------------------------------------------
    @property
    def selector_error(self) -> type[Exception]:
        return self.selectors.SelectorError if self.selectors else ValueError

    def parse_label_selector(self, text: str) -> Any:
        if self.selectors:
            return self.selectors.parse_label_selector(text)
        return _FallbackLabelSelector(text)

    def parse_field_selector(self, text: str, resource: Resource) -> Any:
        if self.selectors:
            return self.selectors.parse_field_selector(text, resource)
        return _FallbackFieldSelector(text)

    # --- defaults / validation -------------------------------------------------------------
    def apply_defaults(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        if self.defaults:
            return self.defaults.apply_defaults(resource, obj)
        return obj

    def validate(self, resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[dict]:
        if self.validation:
            return list(self.validation.validate(resource, obj, old))
        return []

    # --- patches ---------------------------------------------------------------------------
    @property
    def patch_error(self) -> type[Exception]:
        return self.patch.PatchError if self.patch else ValueError

    def merge_patch(self, original: dict, patch: Any) -> dict:
        if self.patch:
            return self.patch.merge_patch(original, patch)
        return _merge_patch(original, patch)

    def strategic_merge_patch(self, original: dict, patch: Any, resource: Resource) -> dict:
        if self.patch:
            return self.patch.strategic_merge_patch(original, patch, resource)
        return _merge_patch(original, patch)

    def json_patch(self, original: dict, ops: Any) -> dict:
        if self.patch:
            return self.patch.json_patch(original, ops)
        import jsonpatch

        try:
            return jsonpatch.apply_patch(original, ops)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as exc:
            raise ValueError(str(exc)) from exc


def open_store(data_dir: str, history: int = 10000) -> Store:
    """The store under `data_dir` (kproxy.store.open_store)."""
    from kproxy.store import open_store as opener

    return opener(data_dir, history=history)


# --- fallbacks (only while kproxy.api.* is missing) ----------------------------------------

def _merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class _FallbackLabelSelector:
    """Equality-only label selector (k=v, k==v, k!=v, k, !k)."""

    def __init__(self, text: str):
        self.terms: list[tuple[str, str, str | None]] = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "!=" in part:
                k, v = part.split("!=", 1)
                self.terms.append(("!=", k.strip(), v.strip()))
            elif "==" in part or "=" in part:
                k, v = part.replace("==", "=").split("=", 1)
                self.terms.append(("=", k.strip(), v.strip()))
            elif part.startswith("!"):
                self.terms.append(("!", part[1:].strip(), None))
            else:
                self.terms.append(("exists", part, None))

    def matches(self, labels: dict | None) -> bool:
        labels = labels or {}
        for op, k, v in self.terms:
            if op == "=" and labels.get(k) != v:
                return False
            if op == "!=" and labels.get(k) == v:
                return False
            if op == "exists" and k not in labels:
                return False
            if op == "!" and k in labels:
                return False
        return True


class _FallbackFieldSelector:
    def __init__(self, text: str):
        self.terms: list[tuple[bool, list[str], str]] = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            neg = "!=" in part
            k, v = part.split("!=", 1) if neg else part.replace("==", "=").split("=", 1)
            self.terms.append((neg, k.strip().split("."), v.strip()))

    def matches(self, obj: dict) -> bool:
        for neg, path, want in self.terms:
            cur: Any = obj
            for p in path:
                cur = cur.get(p) if isinstance(cur, dict) else None
            have = "" if cur is None else str(cur)
            if (have == want) == neg:
                return False
        return True
