"""Pod volumes without a cluster: which files each volume holds (pure), the atomic writer on a
real directory, token renewal times, and the admission plug-ins that add volumes and
tolerations."""
from __future__ import annotations

import os

import pytest

from kproxy.apiserver.auth.sa_pod_admission import SERVICE_ACCOUNT_DIR, add_api_access
from kproxy.apiserver.toleration_admission import add_default_tolerations
from kproxy.kubelet.atomicwriter import write_atomic
from kproxy.kubelet.cgroups import Limits, join_prefix, limit_files, limits_of
from kproxy.kubelet.volumemanager import IssuedToken
from kproxy.kubelet.volumes import (BindMount, MountError, TokenSpec, VolumeFile, bind_mounts, mount_prefix,
                                    referenced_objects, token_specs, volume_files)

POD = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1", "labels": {"app": "web", "tier": "a\"b"},
                    "annotations": {"note": "x"}},
       "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}]}}
OBJECTS = {("ConfigMap", "cfg"): {"a": b"1", "b": b"2"}, ("Secret", "pw"): {"user": b"root", "pass": b"\x00\x01"},
           ("ConfigMap", "gone"): None}


def files(volume, objects=OBJECTS, tokens=None):
    return {f.path: (f.content, oct(f.mode)) for f in volume_files(volume, POD, objects, tokens or {}, "10.0.0.5")}


def test_config_map_all_keys_and_items_with_modes():
    assert files({"name": "v", "configMap": {"name": "cfg"}}) == {"a": (b"1", "0o644"), "b": (b"2", "0o644")}
    assert files({"name": "v", "configMap": {"name": "cfg", "defaultMode": 0o400,
                                             "items": [{"key": "b", "path": "dir/b.txt"},
                                                       {"key": "a", "path": "a", "mode": 0o755}]}}) == \
        {"dir/b.txt": (b"2", "0o400"), "a": (b"1", "0o755")}


def test_secret_binary_and_missing_objects_or_keys():
    assert files({"name": "s", "secret": {"secretName": "pw"}})["pass"] == (b"\x00\x01", "0o644")
    with pytest.raises(MountError, match='MountVolume.SetUp failed for volume "v" : configmap "gone" not found'):
        files({"name": "v", "configMap": {"name": "gone"}})
    assert files({"name": "v", "configMap": {"name": "gone", "optional": True}}) == {}
    with pytest.raises(MountError, match="non-existent configmap key: zz"):
        files({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}})
    with pytest.raises(MountError, match="must be relative"):
        files({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "../etc/passwd"}]}})


def test_downward_api_fields_labels_and_resources():
    got = files({"name": "d", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}]}})
    assert got["name"][0] == b"web" and got["app"][0] == b"web"
    assert got["labels"][0] == b'app="web"\ntier="a\\"b"'
    assert got["mem"][0] == b"64" and got["cpu"][0] == b"250"


def test_projected_token_and_sources():
    volume = {"name": "kube-api-access-x", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token", "audience": "vault"}},
        {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    assert token_specs([volume]) == {TokenSpec("vault", 3607)}
    assert referenced_objects([volume]) == {("ConfigMap", "cfg")}
    with pytest.raises(MountError, match="no service account token"):
        files(volume)
    assert files(volume, tokens={TokenSpec("vault", 3607): "tok"}) == {
        "token": (b"tok", "0o644"), "ca.crt": (b"1", "0o644"), "namespace": (b"team", "0o644")}


def test_bind_mounts_and_the_mount_namespace_prefix():
    volumes = [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch", "emptyDir": {}}]
    container = {"volumeMounts": [{"name": "scratch", "mountPath": "/data/tmp"},
                                  {"name": "cfg", "mountPath": "/etc/app", "subPath": "a"}]}
    mounts = bind_mounts(container, volumes, "/kl/pods/u-1")
    assert mounts == [BindMount("/kl/pods/u-1/volumes/kubernetes.io~empty-dir/scratch", "/data/tmp", False),
                      BindMount("/kl/pods/u-1/volumes/kubernetes.io~configmap/cfg/a", "/etc/app", True)]
    with pytest.raises(MountError, match='volume "nope"'):
        bind_mounts({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, volumes, "/kl")
    prefix = mount_prefix(mounts)
    assert prefix[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert prefix[-1] == "sh" and "mount -o remount,bind,ro /etc/app" in prefix[-2] and 'exec "$@"' in prefix[-2]
    assert mount_prefix([]) == []


def test_atomic_writer_swaps_data_and_drops_removed_names(tmp_path):
    target = str(tmp_path / "vol")
    assert write_atomic(target, [VolumeFile("a", b"1", 0o644), VolumeFile("d/b", b"2", 0o600)])
    first = os.readlink(os.path.join(target, "..data"))
    assert (tmp_path / "vol" / "a").read_bytes() == b"1" and os.readlink(os.path.join(target, "a")) == "..data/a"
    assert oct(os.stat(os.path.join(target, "d", "b")).st_mode & 0o777) == "0o600"
    assert not write_atomic(target, [VolumeFile("a", b"1", 0o644), VolumeFile("d/b", b"2", 0o600)])
    assert write_atomic(target, [VolumeFile("a", b"new", 0o644)])
    assert os.readlink(os.path.join(target, "..data")) != first
    assert (tmp_path / "vol" / "a").read_bytes() == b"new"
    assert not os.path.lexists(os.path.join(target, "d"))
    assert not os.path.exists(os.path.join(target, first))  # the old generation is gone


def test_token_renewed_at_80_percent_or_after_a_day():
    assert IssuedToken("t", 1000.0, 1000.0 + 3600).refresh_at() == 1000.0 + 2880
    assert IssuedToken("t", 0.0, 10 * 86400.0).refresh_at() == 86400.0


def test_service_account_admission_adds_the_projected_volume():
    spec = {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [{"name": "own",
                                                                            "mountPath": SERVICE_ACCOUNT_DIR}]}],
            "initContainers": [{"name": "i"}]}
    add_api_access(spec, True, "kube-api-access-abcde")
    assert [v["name"] for v in spec["volumes"]] == ["kube-api-access-abcde"]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "kube-api-access-abcde", "readOnly": True,
                                                      "mountPath": SERVICE_ACCOUNT_DIR}]
    assert spec["initContainers"][0]["volumeMounts"][0]["name"] == "kube-api-access-abcde"
    assert len(spec["containers"][1]["volumeMounts"]) == 1  # its own mount there is kept
    off = {"automountServiceAccountToken": False, "containers": [{"name": "a"}]}
    add_api_access(off, True, "kube-api-access-x")
    assert "volumes" not in off
    by_account = {"containers": [{"name": "a"}]}
    add_api_access(by_account, False, "kube-api-access-x")
    assert "volumes" not in by_account


def test_default_toleration_seconds():
    spec = {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": 5}]}
    add_default_tolerations(spec)
    assert spec["tolerations"] == [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
    everything = {"tolerations": [{"operator": "Exists"}]}
    add_default_tolerations(everything)
    assert everything["tolerations"] == [{"operator": "Exists"}]


def test_cgroup_limits_files_and_join_prefix():
    limits = limits_of({"resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}})
    assert limits == Limits(64 << 20, 25000)
    assert limits_of({"resources": {"limits": {"cpu": "0.001"}}}) == Limits(None, 1000)  # kubelet's 1 ms floor
    assert not limits_of({"resources": {"requests": {"memory": "1Gi"}}})
    assert limit_files(limits, 2) == {"": {"memory.max": str(64 << 20), "memory.swap.max": "0",
                                           "cpu.max": "25000 100000"}}
    assert limit_files(Limits(None, 25000), 1) == {"cpu": {"cpu.cfs_period_us": "100000",
                                                           "cpu.cfs_quota_us": "25000"}}
    prefix = join_prefix(["/cg/memory/x/cgroup.procs", "/cg/cpu/x/cgroup.procs"])
    assert prefix == ["/bin/sh", "-c", 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"', "sh",
                      "/cg/memory/x/cgroup.procs", "/cg/cpu/x/cgroup.procs"]
    assert join_prefix([]) == []


class FakeApi:
    """Answers the two calls PodVolumes makes: GET of a ConfigMap and POST of a TokenRequest."""

    def __init__(self, clock):
        self.clock = clock
        self.config_maps = {"kube-root-ca.crt": {"data": {"ca.crt": "PEM"}}}
        self.token_requests: list[dict] = []

    async def get(self, resource, name, namespace):
        from kproxy.api.status import ApiError
        if name not in self.config_maps:
            raise ApiError({"code": 404, "message": "not found"})
        return self.config_maps[name]

    async def request(self, method, path, body=None):
        import time as _time
        self.token_requests.append({"path": path, **body["spec"]})
        expires = _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(self.clock() + body["spec"]["expirationSeconds"]))
        return {"status": {"token": f"token-{len(self.token_requests)}", "expirationTimestamp": expires}}


def test_pod_volumes_renew_tokens_at_80_percent_and_follow_config_maps(tmp_path):
    import asyncio

    from kproxy.apiserver.auth.sa_pod_admission import api_access_volume
    from kproxy.kubelet.volumemanager import PodVolumes
    now = [1_000_000.0]
    api = FakeApi(lambda: now[0])
    pod = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1"},
           "spec": {"serviceAccountName": "robot", "volumes": [api_access_volume("kube-api-access-abcde")]}}
    volumes = PodVolumes(api, pod, str(tmp_path), clock=lambda: now[0])
    target = tmp_path / "volumes" / "kubernetes.io~projected" / "kube-api-access-abcde"

    async def scenario():
        assert await volumes.set_up("10.0.0.5", "10.0.0.1") == ["kube-api-access-abcde"]
        assert (target / "token").read_text() == "token-1" and (target / "ca.crt").read_text() == "PEM"
        assert api.token_requests == [{"path": "/api/v1/namespaces/team/serviceaccounts/robot/token",
                                       "expirationSeconds": 3607, "boundObjectRef": {
                                           "kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u-1"}}]
        now[0] += 0.79 * 3607
        assert await volumes.refresh(pod, "10.0.0.5", "10.0.0.1") == []  # not due yet: nothing rewritten
        now[0] += 0.02 * 3607
        assert await volumes.refresh(pod, "10.0.0.5", "10.0.0.1") == ["kube-api-access-abcde"]
        assert (target / "token").read_text() == "token-2" and len(api.token_requests) == 2
        api.config_maps["kube-root-ca.crt"] = {"data": {"ca.crt": "NEW"}}
        await volumes.refresh(pod, "10.0.0.5", "10.0.0.1")
        assert (target / "ca.crt").read_text() == "NEW"
        del api.config_maps["kube-root-ca.crt"]
        with pytest.raises(MountError, match='configmap "kube-root-ca.crt" not found'):
            await volumes.refresh(pod, "10.0.0.5", "10.0.0.1")
        assert (target / "ca.crt").read_text() == "NEW"  # a failed refresh keeps the files
    asyncio.run(scenario())
    volumes.tear_down()
    assert not (tmp_path / "volumes").exists()
