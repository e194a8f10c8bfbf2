"""Property test of the rolling update (kproxy/controllers/rollout.py) against a simulated
cluster: a ReplicaSet controller that creates and deletes (least useful first) toward each
spec, a kubelet that makes pods ready after random delays, and a Deployment controller that
sees pods through an informer that may lag. Whatever the interleaving, the pods that exist
never number more than replicas + maxSurge and every rollout completes; with an informer that
is current at each Deployment step, never fewer than replicas - maxUnavailable pods are
available once the first rollout is done. (With a lagging one a stuck rollout's removal of
unavailable old pods may take a pod that became ready since, as upstream's would.)"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from kproxy.controllers import rollout
from tests.unit.workload_objects import DEPLOYMENT


@dataclass
class Pod:
    rs: str
    ready: bool = False


@dataclass
class Cluster:
    deployment: dict
    specs: dict[str, int] = field(default_factory=dict)  # ReplicaSet name -> spec.replicas
    templates: dict[str, str] = field(default_factory=dict)  # ReplicaSet name -> image
    order: list[str] = field(default_factory=list)  # creation order
    pods: list[Pod] = field(default_factory=list)
    snapshots: list[tuple[int, list[Pod]]] = field(default_factory=list)  # (time, pods) an informer saw
    seen_at: int = 0  # the snapshot the Deployment controller's informer is at: never goes back
    time: int = 0
    draining: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (from, written at)

    def image(self) -> str:
        return self.deployment["spec"]["template"]["spec"]["containers"][0]["image"]

    def views(self, seen_time: int, seen: list[Pod]) -> tuple[rollout.RSView | None, list[rollout.RSView]]:
        views = []
        for i, name in enumerate(self.order):
            rs = {"metadata": {"name": name, "creationTimestamp": f"2026-01-01T00:00:{i:02d}Z"},
                  "spec": {"replicas": self.specs[name]}}
            pods = [p for p in seen if p.rs == name]
            drain_from, written = self.draining.get(name, (0, 0))
            if drain_from and seen_time > written and len(pods) <= self.specs[name]:
                del self.draining[name]  # the informer has seen the scale-down done
                drain_from = 0
            views.append(rollout.RSView(rs, len(pods), sum(p.ready for p in pods), drain_from))
        new = next((v for v in views if self.templates[v.rs["metadata"]["name"]] == self.image()), None)
        return new, [v for v in views if v is not new]

    def deployment_step(self, catch_up: int) -> None:
        self.time += 1
        self.seen_at = min(len(self.snapshots) - 1, self.seen_at + catch_up)
        seen_time, seen = self.snapshots[self.seen_at]
        new, old = self.views(seen_time, seen)
        if new is None:
            name = f"rs{len(self.order)}"
            self.order.append(name)
            self.templates[name] = self.image()
            self.specs[name] = 0 if any(v.counted for v in old) else rollout.replicas_of(self.deployment)
            new, old = self.views(seen_time, seen)
        before = {v.rs["metadata"]["name"]: v.counted for v in [new] + old}
        plan = rollout.rolling_update(self.deployment, new, old)
        for name, replicas in plan.scale.items():
            if replicas < before[name]:
                self.draining[name] = (before[name], self.time)
        self.specs.update(plan.scale)

    def replica_set_step(self, index: int) -> None:
        name = self.order[index % len(self.order)]
        mine = [p for p in self.pods if p.rs == name]
        if len(mine) < self.specs[name]:
            self.pods.extend(Pod(name) for _ in range(self.specs[name] - len(mine)))
        for victim in sorted(mine, key=lambda p: p.ready)[:max(0, len(mine) - self.specs[name])]:
            self.pods.remove(victim)

    def kubelet_step(self, index: int) -> None:
        waiting = [p for p in self.pods if not p.ready]
        if waiting:
            waiting[index % len(waiting)].ready = True

    def snapshot(self) -> None:
        self.time += 1
        self.snapshots.append((self.time, [copy.copy(p) for p in self.pods]))

    def done(self) -> bool:
        replicas = rollout.replicas_of(self.deployment)
        current = [n for n in self.order if self.templates[n] == self.image()]
        return (len(current) == 1 and self.specs[current[0]] == replicas
                and all(self.specs[n] == 0 for n in self.order if n != current[0])
                and len(self.pods) == replicas and all(p.ready and p.rs == current[0] for p in self.pods))


steps = st.lists(st.tuples(st.sampled_from(["deploy", "rs", "kubelet", "kubelet", "snapshot"]),
                           st.integers(0, 50)), min_size=20, max_size=300)
bound = st.one_of(st.integers(0, 3), st.sampled_from(["0%", "25%", "50%", "100%"]))


@settings(max_examples=200, deadline=None)
@given(replicas=st.integers(1, 8), surge=bound, unavailable=bound, schedule=steps, lagging=st.booleans())
def test_rolling_update_stays_within_its_bounds(replicas, surge, unavailable, schedule, lagging):
    d = copy.deepcopy(DEPLOYMENT)
    d["spec"]["replicas"] = replicas
    d["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    if rollout.scaled_value(surge, replicas, True) == 0 and rollout.scaled_value(unavailable, replicas, False) == 0:
        return  # refused by validation
    max_surge, max_unavailable = rollout.surge_and_unavailable(d)
    cluster = Cluster(d)
    cluster.snapshot()

    def settle() -> None:
        for _ in range(200):
            if cluster.done():
                return
            cluster.snapshot()
            cluster.deployment_step(len(cluster.snapshots))
            cluster.snapshot()
            for i in range(len(cluster.order)):
                cluster.replica_set_step(i)
                check()
            while any(not p.ready for p in cluster.pods):
                cluster.kubelet_step(0)
            cluster.snapshot()
        raise AssertionError("the rollout did not complete")

    rolled_out = [False]

    def check() -> None:
        assert len(cluster.pods) <= replicas + max_surge, (cluster.specs, len(cluster.pods))
        if rolled_out[0] and not lagging:
            assert sum(p.ready for p in cluster.pods) >= replicas - max_unavailable, cluster.specs

    settle()
    rolled_out[0] = True
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    for action, n in schedule:
        if action == "deploy":
            if not lagging:
                cluster.snapshot()
            cluster.deployment_step(n % 3 if lagging else len(cluster.snapshots))
        elif action == "rs":
            cluster.replica_set_step(n)
        elif action == "kubelet":
            cluster.kubelet_step(n)
        else:
            cluster.snapshot()
        check()
    settle()
