"""A test double acting as a kubelet until the real one exists: it watches pods and, after a
per-pod delay, writes them Running and Ready (with a pod IP and the Ready condition's
lastTransitionTime) through the status subresource, as a kubelet reports a started pod.

`ready_after(pod) -> seconds | None` decides the delay (None: not now; it is asked again when
the pod changes).
A pod annotated `kproxy.test/exit-code: N` then finishes as a process exiting with N would:
Succeeded for 0, Failed otherwise (its container terminated with that exit code).
It runs its own event loop in a thread; stop() ends it. Pods being deleted are left alone,
unless `finish_deletions`: then a bound pod being deleted is removed (grace period 0), as a
kubelet does once its containers stopped.
"""
from __future__ import annotations

import asyncio
import datetime
import itertools
from typing import Callable

from kproxy.api.resources import PODS
from kproxy.api.status import ApiError
from kproxy.client.informer import Informer
from kproxy.client.rest import ApiClient
from kproxy.controllers.base import Handlers
from tests.controllers.loopthread import LoopThread

_ips = itertools.count(1)
EXIT_CODE = "kproxy.test/exit-code"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet(LoopThread):
    name = "fake-kubelet"

    def __init__(self, kubeconfig: str, ready_after: Callable[[dict], float | None] = lambda pod: 0.0,
                 finish_deletions: bool = False):
        self._kubeconfig = kubeconfig
        self._ready_after = ready_after
        self._finish_deletions = finish_deletions
        self.marked_ready = 0
        super().__init__()

    async def body(self, stop: asyncio.Event) -> None:
        async with ApiClient.from_kubeconfig(self._kubeconfig) as client:
            seen: set[str] = set()
            tasks: set[asyncio.Task] = set()

            def on_pod(pod: dict) -> None:
                md = pod.get("metadata") or {}
                uid = md.get("uid", "")
                if md.get("deletionTimestamp") and self._finish_deletions and (pod.get("spec") or {}).get("nodeName"):
                    spawn(self._finish_deletion(client, pod))
                if uid in seen or md.get("deletionTimestamp") or _is_ready(pod):
                    return
                delay = self._ready_after(pod)
                if delay is None:
                    return  # asked again on the pod's next change (e.g. once it is bound)
                seen.add(uid)
                spawn(self._start(client, pod, delay))

            def spawn(coro) -> None:
                task = asyncio.get_running_loop().create_task(coro)
                tasks.add(task)
                task.add_done_callback(tasks.discard)

            informer = Informer(client, PODS)
            informer.add_handler(Handlers(on_add=on_pod, on_update=lambda old, new: on_pod(new)))
            runner = asyncio.create_task(informer.run())
            self.started()
            await stop.wait()
            informer.stop()
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(runner, *tasks, return_exceptions=True)

    async def _start(self, client: ApiClient, pod: dict, delay: float) -> None:
        await asyncio.sleep(delay)
        md = pod["metadata"]
        n = next(_ips)
        ip = f"10.244.{n // 250}.{n % 250 + 1}"
        for _ in range(20):
            try:
                current = await client.get(PODS, md["name"], md["namespace"])
            except ApiError:
                return  # deleted meanwhile
            if (current.get("metadata") or {}).get("deletionTimestamp"):
                return
            now = _now()
            current["status"] = {**(current.get("status") or {}), "phase": "Running", "podIP": ip,
                                 "podIPs": [{"ip": ip}], "startTime": now,
                                 "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}
            try:
                current = await client.update_status(PODS, current)
                self.marked_ready += 1
                await self._finish(client, current)
                return
            except ApiError as exc:
                if exc.code == 404:
                    return
                if exc.code != 409:
                    raise

    async def _finish(self, client: ApiClient, pod: dict) -> None:
        """Ends a pod annotated with an exit code: phase, Ready false, a terminated container."""
        code = (pod["metadata"].get("annotations") or {}).get(EXIT_CODE)
        if code is None:
            return
        now = _now()
        pod["status"] = {**pod["status"], "phase": "Succeeded" if int(code) == 0 else "Failed",
                         "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
                         "containerStatuses": [{"name": c["name"], "ready": False, "restartCount": 0,
                                                "image": c.get("image", ""),
                                                "state": {"terminated": {"exitCode": int(code), "finishedAt": now}}}
                                               for c in pod["spec"].get("containers") or []]}
        await client.update_status(PODS, pod)

    @staticmethod
    async def _finish_deletion(client: ApiClient, pod: dict) -> None:
        md = pod["metadata"]
        try:
            await client.delete(PODS, md["name"], md["namespace"], uid=md.get("uid"), grace_period_seconds=0)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def stop(self) -> None:
        super().stop()
        assert self.error is None, f"fake kubelet crashed: {self.error!r}"


def _is_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])
