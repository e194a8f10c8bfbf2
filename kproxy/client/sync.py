"""A blocking client for CLIs, the lab and tests.

`Client` runs an ApiClient on its own event loop in a daemon thread; every method blocks until
the call finishes and raises what ApiClient raises (ApiError, ApiConnectionError). Safe to
use from several threads. Call close() (or use it as a context manager) to stop the thread.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Coroutine

from kproxy.api.resources import Resource
from kproxy.api.status import ApiError
from kproxy.client.kubeconfig import ClusterConfig, load_kubeconfig
from kproxy.client.rest import ApiClient


class Client:
    def __init__(self, config: ClusterConfig, **kwargs: Any):
        self._api = ApiClient(config, **kwargs)
        self.config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kproxy-client", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None, **kwargs: Any) -> "Client":
        return cls(load_kubeconfig(path, context), **kwargs)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._closed:
            coro.close()
            raise RuntimeError("client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        asyncio.run_coroutine_threadsafe(self._api.close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # -- the verbs of ApiClient, blocking -----------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(self._api.request(method, path, **kwargs))

    def list(self, resource: Resource, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None, **kwargs: Any) -> dict:
        return self._call(self._api.list(resource, namespace, label_selector, field_selector, **kwargs))

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict:
        return self._call(self._api.get(resource, name, namespace))

    def create(self, resource: Resource, obj: dict, namespace: str | None = None) -> dict:
        return self._call(self._api.create(resource, obj, namespace))

    def update(self, resource: Resource, obj: dict, **kwargs: Any) -> dict:
        return self._call(self._api.update(resource, obj, **kwargs))

    def update_status(self, resource: Resource, obj: dict) -> dict:
        return self._call(self._api.update_status(resource, obj))

    def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None,
              patch_type: str = "merge", **kwargs: Any) -> dict:
        return self._call(self._api.patch(resource, name, patch, namespace, patch_type, **kwargs))

    def delete(self, resource: Resource, name: str, namespace: str | None = None, **kwargs: Any) -> dict:
        return self._call(self._api.delete(resource, name, namespace, **kwargs))

    def finalize_namespace(self, namespace: dict) -> dict:
        return self._call(self._api.finalize_namespace(namespace))

    # -- helpers for tests and the lab ----------------------------------------------------

    def get_or_none(self, resource: Resource, name: str, namespace: str | None = None) -> dict | None:
        """get(), but None when the object does not exist (404)."""
        try:
            return self.get(resource, name, namespace)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def wait_for(self, fetch: Callable[["Client"], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
        """Polls `fetch(self)` until it returns a truthy value and returns it; raises
        TimeoutError (with the last value) when `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = fetch(self)
            if last:
                return last
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; last value: {last!r}"[:500])
            time.sleep(interval)
