"""Runs every controller over one set of shared informers until told to stop."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from kproxy.controllers.base import SharedInformers
from kproxy.controllers.cronjob import CronJobController
from kproxy.controllers.daemonset import DaemonSetController
from kproxy.controllers.deployment import DeploymentController
from kproxy.controllers.disruption import DisruptionController
from kproxy.controllers.endpoints import EndpointsController
from kproxy.controllers.endpointslice import EndpointSliceController
from kproxy.controllers.garbagecollector import GarbageCollector
from kproxy.controllers.job import JobController
from kproxy.controllers.leaderelection import LeaderElector
from kproxy.controllers.mirroring import EndpointSliceMirroringController
from kproxy.controllers.namespace import NamespaceController
from kproxy.controllers.node import NodeLifecycleController
from kproxy.controllers.podgc import PodGCController, PodGCOptions
from kproxy.controllers.replicaset import ReplicaSetController
from kproxy.controllers.replicationcontroller import ReplicationControllerController
from kproxy.controllers.resourcequota import ResourceQuotaController
from kproxy.controllers.rootcacert import RootCACertPublisher
from kproxy.controllers.serviceaccount import ServiceAccountController
from kproxy.controllers.statefulset import StatefulSetController
from kproxy.controllers.tainteviction import TaintEvictionController

log = logging.getLogger(__name__)


def build_controllers(client: Any, informers: SharedInformers, *, node_grace_period: float = 40.0,
                      node_monitor_period: float | None = None,
                      clock: Callable[[], float] | None = None,
                      pod_gc: PodGCOptions | None = None) -> list[Any]:
    """Every controller, registered on `informers` (which must not be started yet); `clock`
    (epoch seconds, default time.time) drives the ones that act at times of day."""
    return [
        NamespaceController(client, informers),
        ServiceAccountController(client, informers),
        EndpointSliceController(client, informers),
        EndpointsController(client, informers),
        EndpointSliceMirroringController(client, informers),
        ResourceQuotaController(client, informers),
        NodeLifecycleController(client, informers, grace_period=node_grace_period,
                                monitor_period=node_monitor_period),
        ReplicaSetController(client, informers),
        DeploymentController(client, informers),
        ReplicationControllerController(client, informers),
        DisruptionController(client, informers),
        JobController(client, informers, clock=clock),
        CronJobController(client, informers, clock=clock),
        PodGCController(client, informers, pod_gc),
        DaemonSetController(client, informers),
        StatefulSetController(client, informers),
        GarbageCollector(client, informers),
        RootCACertPublisher(client, informers),
        TaintEvictionController(client, informers),
    ]


async def run_controllers(client: Any, stop: asyncio.Event, *, node_grace_period: float = 40.0,
                          node_monitor_period: float | None = None, leader_elect: bool = True,
                          lease_duration: float = 15.0, identity: str | None = None,
                          clock: Callable[[], float] | None = None,
                          pod_gc: PodGCOptions | None = None) -> None:
    """Runs all controllers through `client` (an ApiClient) until `stop` is set; returns after
    every informer and worker has ended. Cancelling it stops everything as well.

    With `leader_elect` (the default) the controllers run only while this process holds the
    Lease kube-system/kproxy-controllers, so several managers on one apiserver never act at
    once; a manager that stops cleanly hands over at once, one that dies after
    `lease_duration` seconds."""
    async def lead(lost: asyncio.Event) -> None:
        await _run_all(client, lost, node_grace_period=node_grace_period, node_monitor_period=node_monitor_period,
                       clock=clock, pod_gc=pod_gc)

    if not leader_elect:
        await lead(stop)
        return
    elector = LeaderElector(client, identity=identity, lease_duration=lease_duration,
                            renew_deadline=lease_duration * 2 / 3, retry_period=lease_duration / 7.5)
    await elector.run(lead, stop)


async def _run_all(client: Any, stop: asyncio.Event, *, node_grace_period: float,
                   node_monitor_period: float | None, clock: Callable[[], float] | None = None,
                   pod_gc: PodGCOptions | None = None) -> None:
    informers = SharedInformers(client)
    controllers = build_controllers(client, informers, node_grace_period=node_grace_period,
                                    node_monitor_period=node_monitor_period, clock=clock,
                                    pod_gc=pod_gc)
    informers.start()
    tasks = [asyncio.create_task(c.run(stop), name=f"controller-{c.name}") for c in controllers]
    log.info("controllers started: %s", ", ".join(c.name for c in controllers))
    try:
        done_early = asyncio.ensure_future(asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([done_early, stopped], return_when=asyncio.FIRST_COMPLETED)
        for fut in (done_early, stopped):
            fut.cancel()
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("controller %s crashed: %r", task.get_name(), task.exception())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()
        log.info("controllers stopped")
