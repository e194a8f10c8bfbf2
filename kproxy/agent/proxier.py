"""The proxier: informers -> change trackers -> one sync function -> backend.

Guarantees:
- Informer handlers only record changes and request a sync; `sync()` is the only code that
  writes to the kernel, and the runner never runs it concurrently with itself.
- The first sync happens only after every informer has delivered its first list, so the first
  ruleset is complete (no window where a live Service is missing).
- A sync renders the state (pure) and applies it in one backend transaction on the NetNS
  thread. Full syncs (first, periodic every backend.full_sync_period or sync period, after a
  failure, when backend.drifted() says the kernel lost our rules) pass previous=None so the
  backend rewrites everything it owns and repairs drift; partial syncs pass the ruleset last
  applied. A change never waits behind more than the one sync in progress.
- One ServicePort never blocks the others (kproxy.agent.quarantine): when the render raises or
  the kernel refuses the transaction of a full sync (a refused partial sync is first retried
  as a full one, like any failure), the changed ServicePorts are bisected with trial applies
  until the culprits are found, everything else is programmed, and each culprit is skipped
  while it stays as it is (its previous rules, if any, stay; full syncs try it again). Skipped
  ServicePorts are in the kubeproxy_sync_proxy_rules_skipped_service_ports gauge; each new
  culprit, and each Service or EndpointSlice with values translate had to leave out, is logged
  once with its name and reason, counted in kubeproxy_sync_proxy_rules_skipped_objects_total
  and reported in a Warning Event (kproxy.agent.events).
- When a sync fails otherwise (or no change can be blamed), the failure is counted, the next
  sync is made full, and the runner retries. Every refused apply counts in
  kubeproxy_sync_proxy_rules_iptables_restore_failures_total.
- After a successful apply, stale UDP/SCTP conntrack entries and TCP connection attempts older
  than a newly served frontend's rules are deleted (kproxy.agent.conntrack), the health-check
  node ports are opened/closed to match, then health and metrics are updated.
- The node's interface addresses (kproxy.agent.localaddrs) are read before the first sync and
  followed: a change asks for a full sync, so NodePorts follow them without a restart.
- stop() ends the informers and the runner and closes the backend; rules are left in place so
  a restarted agent takes over without a gap.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kproxy.agent import conntrack, policy, quarantine
from kproxy.agent.backend import ApplyError, Backend
from kproxy.agent.config import AgentConfig
from kproxy.agent.events import SERVICE_REF, SLICE_REF, EventRecorder
from kproxy.agent.health import ProxierHealth
from kproxy.agent.localaddrs import LocalAddressWatcher
from kproxy.agent.metrics import ProxyMetrics
from kproxy.agent.runner import BoundedFrequencyRunner
from kproxy.agent.servicehealth import ServiceHealthServer
from kproxy.agent.state import FULL, Changes, ProxyState, ServicePort, changes_between
from kproxy.agent.tracker import ProxyStateBuilder, StateSettings
from kproxy.agent.translate import HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL
from kproxy.api.resources import ENDPOINT_SLICES, NODES, SERVICES
from kproxy.client.informer import Informer

log = logging.getLogger(__name__)

SERVICE_FIELD_SELECTOR = "spec.clusterIP!=None"
SERVICE_LABEL_SELECTOR = f"!{SERVICE_PROXY_NAME_LABEL},!{HEADLESS_LABEL}"
SLICE_LABEL_SELECTOR = f"!{HEADLESS_LABEL}"


def _no_local_endpoints(sp: ServicePort) -> tuple[bool, bool]:
    """(internal, external): whether a Local policy leaves this ServicePort without endpoints."""
    if not (sp.internal_policy_local or sp.external_policy_local):
        return False, False
    missing = not policy.local_endpoints(sp)
    return sp.internal_policy_local and missing, sp.external_policy_local and missing


class Proxier:
    def __init__(self, config: AgentConfig, node_name: str, client: Any, backend: Backend, netns: Any,
                 metrics: ProxyMetrics | None = None, health: ProxierHealth | None = None,
                 service_health: ServiceHealthServer | None = None) -> None:
        self.config = config
        self.node_name = node_name
        self.client = client
        self.backend = backend
        self.netns = netns
        self.metrics = metrics or ProxyMetrics()
        self.health = health or ProxierHealth(timeout=2 * config.sync_period)
        self.service_health = service_health or ServiceHealthServer(netns, self.health)
        self.builder = ProxyStateBuilder(
            StateSettings.from_config(config, node_name),
            on_change=self._on_change,
        )
        self.local_addresses = LocalAddressWatcher(netns, self.builder.set_local_ips)
        full_period = max(backend.full_sync_period or config.sync_period, config.sync_period)
        self.runner = BoundedFrequencyRunner(self.sync, config.min_sync_period, config.sync_period,
                                             name=f"{backend.name or 'backend'} sync",
                                             full_interval=full_period, check=self._drifted)
        self.informers = [
            # the trackers keep their own views: the caches need only the objects' identities
            Informer(client, SERVICES, field_selector=SERVICE_FIELD_SELECTOR,
                     label_selector=SERVICE_LABEL_SELECTOR, handler=self.builder.services, metadata_only=True),
            Informer(client, ENDPOINT_SLICES, label_selector=SLICE_LABEL_SELECTOR, handler=self.builder.slices,
                     metadata_only=True),
            Informer(client, NODES, field_selector=f"metadata.name={node_name}", handler=self.builder.node),
        ]
        self._synced_once = False
        self._informers_synced = False
        self._force_full = True
        self.events = EventRecorder(client, node_name)
        self.quarantine = quarantine.Quarantine()
        self._built_state: ProxyState | None = None  # the builder's state the last apply was made from
        self._applied_state: ProxyState | None = None  # what the kernel holds (skipped ServicePorts left out)
        self._applied_ruleset: Any = None
        self._ruleset_state: ProxyState | None = None  # the state _applied_ruleset was rendered from
        self._pending_trigger_times: list[float] = []
        self._no_local: dict[str, tuple[bool, bool]] = {}  # only ServicePorts lacking local endpoints
        self._no_local_counts = [0, 0]  # internal, external
        self._stop = asyncio.Event()
        self.sync_count = 0

    # ---------------------------------------------------------------- events

    def _on_change(self) -> None:
        """Called by the trackers for every real change: queue a sync."""
        self.health.queued_update()
        self.metrics.record_queued()
        self._record_pending()
        if self._informers_synced:
            self.runner.run()

    def _record_pending(self) -> None:
        b = self.builder
        self.metrics.record_pending(b.services.pending, b.slices.pending, b.services.total, b.slices.total)

    async def _drifted(self) -> bool:
        """The backend's drift check (periodic syncs between full ones); nothing applied yet
        means nothing to check (the first sync is full anyway)."""
        if self._applied_ruleset is None:
            return False
        return await self.netns.arun(self.backend.drifted)

    # ---------------------------------------------------------------- the one writer

    async def sync(self, full: bool) -> None:
        """Builds the next state and programs it (see module doc). Raises on apply failure."""
        started = time.monotonic()
        result = self.builder.build_state()
        self._pending_trigger_times.extend(result.trigger_times)
        self._record_pending()
        self.health.node_eligible = self.builder.node.eligible
        self._report_issues()
        full = full or self._force_full or result.changes.full
        if not full and not result.changes.services and result.state is self._built_state:
            self.health.updated()  # nothing changed since the last apply
            return
        base = dict(self._applied_state.services) if self._applied_state is not None else {}
        state, released = self.quarantine.effective(result.state, base, retry=full)
        keys: Any = None if full else result.changes.services | released
        # what the render may take from the applied ruleset: after a failure the builder's
        # changes no longer start from what that ruleset was rendered from
        changes = FULL if self._force_full or result.changes.full else \
            Changes(full=False, services=result.changes.services | released)
        if released:
            self.metrics.record_skipped(self.quarantine.counts())
        try:
            applied = await self._program(state, full, changes)
        except quarantine.Refused as refused:
            if not full:  # drift or a transient error fail a partial apply too: a full sync first
                self._sync_failed(refused)
                raise
            log.info("sync refused (%s: %s); looking for the ServicePorts at fault", refused.stage, refused.reason)
            rewrite: list[bool] = [full]  # trials stay full until one succeeds (node-wide parts may have changed)

            async def attempt(trial: ProxyState) -> None:
                await self._program(trial, rewrite[0], changes_between(self._ruleset_state, trial))
                rewrite[0] = False

            try:
                held, culprits = await quarantine.isolate(state, base, attempt, refused)
            except Exception as exc:
                self._sync_failed(exc)
                raise
            self._skip(culprits)
            state, keys, applied = quarantine.with_services(state, held), None, None
        except Exception as exc:
            self._sync_failed(exc)
            raise
        previous = self._applied_state
        self._applied_state, self._built_state = state, result.state
        filters = conntrack.plan_flush(previous, state, keys)
        if filters:
            await self.netns.arun(conntrack.flush, self.netns, filters)
        unanswered = conntrack.plan_unanswered(previous, state, keys)
        if unanswered:
            await self.netns.arun(conntrack.flush_unanswered, self.netns, unanswered)
        self._update_no_local(state, keys)
        await self.service_health.update(state, keys)
        duration = time.monotonic() - started
        self.health.updated()
        self.metrics.record_sync(duration, full)
        self.metrics.record_programmed(self._pending_trigger_times)
        self._pending_trigger_times.clear()
        self.sync_count += 1
        if not self._synced_once:
            self._synced_once = True
            log.info("first sync done: %d service ports, revision %d", len(state.services), state.revision)
        log.debug("%s sync of revision %d in %.3fs (%s)", "full" if full else "partial", state.revision,
                  duration, getattr(applied, "detail", ""))

    async def _program(self, state: ProxyState, full: bool, changes: Changes) -> Any:
        """Renders `state` (`changes`: what differs from the state the applied ruleset was
        rendered from) and applies it (a full rewrite when `full` or when the kernel's content
        is unknown). Raises quarantine.Refused when the render raises or the kernel refuses."""
        loop = asyncio.get_running_loop()
        try:
            ruleset = await loop.run_in_executor(None, self.backend.render, state, self._applied_ruleset, changes)
        except Exception as exc:
            raise quarantine.Refused(quarantine.RENDER, f"{type(exc).__name__}: {exc}") from exc
        previous = None if full or self._force_full else self._applied_ruleset
        try:
            applied = await self.netns.arun(self.backend.apply, ruleset, previous)
        except ApplyError as exc:  # nothing of it took effect: the kernel holds what it held
            self.metrics.record_apply_failure()
            raise quarantine.Refused(quarantine.KERNEL, str(exc)) from exc
        self._applied_ruleset, self._ruleset_state, self._force_full = ruleset, state, False
        return applied

    def _sync_failed(self, exc: BaseException) -> None:
        # whatever failed, the kernel's content is no longer known: rewrite all next time
        if not isinstance(exc, quarantine.Refused):  # refused applies are counted in _program
            self.metrics.record_apply_failure()
        self._force_full = True
        self.health.queued_update()  # still unprogrammed: healthz fails if this persists
        if isinstance(exc, (ApplyError, quarantine.Refused)):
            log.error("applying rules failed (next sync is full): %s", exc)
        else:
            log.exception("sync failed unexpectedly (next sync is full)")

    def _skip(self, culprits: dict[str, quarantine.Skipped]) -> None:
        """Sets culprits aside; logs, counts and reports the new ones."""
        for key, s in sorted(self.quarantine.add(culprits).items()):
            reason = "KernelRefused" if s.stage == quarantine.KERNEL else "RenderFailed"
            log.error("ServicePort %s skipped (%s): %s", key, reason, s.reason)
            self.metrics.record_skipped_object(reason)
            sp = s.service_port
            self.events.warn(SERVICE_REF, sp.namespace, sp.name, reason,
                             f"port {sp.port_name or sp.port}/{sp.protocol} is not programmed on this node: {s.reason}")
        self.metrics.record_skipped(self.quarantine.counts())

    def _report_issues(self) -> None:
        """Logs, counts and reports Services and slices whose unusable values were left out."""
        for ref, tracker in ((SERVICE_REF, self.builder.services), (SLICE_REF, self.builder.slices)):
            for key, (obj, issues) in sorted(tracker.take_issues().items()):
                text = "; ".join(issues)
                log.warning("%s %s: left out: %s", ref[1], key, text)
                self.metrics.record_skipped_object("InvalidValue")
                meta = obj.get("metadata") or {}
                self.events.warn(ref, str(meta.get("namespace", "")), str(meta.get("name", "")), "InvalidValue", text)

    def _update_no_local(self, state: ProxyState, keys: Any) -> None:
        """Keeps the no-local-endpoints counts current in O(changed ServicePorts)."""
        if keys is None:
            self._no_local = {}
            self._no_local_counts = [0, 0]
            keys = state.services.keys()
        counts = self._no_local_counts
        for k in keys:
            old = self._no_local.pop(k, (False, False))
            sp = state.services.get(k)
            new = _no_local_endpoints(sp) if sp is not None else (False, False)
            if new != (False, False):
                self._no_local[k] = new
            for i in (0, 1):
                counts[i] += int(new[i]) - int(old[i])
        self.metrics.record_no_local_endpoints(internal=counts[0], external=counts[1])

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Runs informers and syncs until stop(). Does not remove any rule on the way out."""
        tasks = [asyncio.create_task(inf.run(), name=f"informer-{inf.resource.plural}") for inf in self.informers]
        runner_task: asyncio.Task | None = None
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            try:
                await self.local_addresses.start()  # NodePorts follow the interfaces' addresses
            except OSError as exc:
                log.error("cannot read the node's addresses (NodePorts use the Node's): %s", exc)
            synced = asyncio.gather(*(inf.synced.wait() for inf in self.informers))
            first: set[asyncio.Future[Any]] = {synced, stop_wait}
            done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if synced not in done:
                synced.cancel()
                return
            self._informers_synced = True
            log.info("informers synced; starting sync loop (min %.3gs, period %.3gs)",
                     self.runner.min_interval, self.runner.max_interval)
            self.runner.run(full=True)
            runner_task = asyncio.create_task(self.runner.loop(), name="sync-runner")
            await asyncio.wait({runner_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.runner.stop()
            for inf in self.informers:
                inf.stop()
            if runner_task is not None:
                await asyncio.gather(runner_task, return_exceptions=True)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stop_wait.cancel()
            await self.local_addresses.stop()
            await self.service_health.stop()

    def stop(self) -> None:
        self._stop.set()
