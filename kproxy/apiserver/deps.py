"""The one seam between the apiserver and the object logic in kproxy.api (selectors,
defaults, validation, patches) and kproxy.store. The registry and the HTTP layer call these
through a `Deps` instance, so a test can substitute any of them."""
from __future__ import annotations

from typing import Any

from kproxy.api import defaults, patch, selectors, validation
from kproxy.api.resources import Resource
from kproxy.store.base import Store


class Deps:
    selector_error: type[Exception] = selectors.SelectorError
    patch_error: type[Exception] = patch.PatchError
    patch_too_large: type[Exception] = patch.PatchTooLarge

    def parse_label_selector(self, text: str) -> Any:
        return selectors.parse_label_selector(text)

    def parse_field_selector(self, text: str, resource: Resource) -> Any:
        return selectors.parse_field_selector(text, resource)

    def apply_defaults(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return defaults.apply_defaults(resource, obj)

    def validate(self, resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[dict]:
        return list(validation.validate(resource, obj, old))

    def merge_patch(self, original: dict, body: Any) -> dict:
        return patch.merge_patch(original, body)

    def strategic_merge_patch(self, original: dict, body: Any, resource: Resource) -> dict:
        return patch.strategic_merge_patch(original, body, resource)

    def json_patch(self, original: dict, ops: Any) -> dict:
        return patch.json_patch(original, ops)


def open_store(data_dir: str, history: int = 10000) -> Store:
    """The store under `data_dir` (kproxy.store.open_store)."""
    from kproxy.store import open_store as opener

    return opener(data_dir, history=history)
