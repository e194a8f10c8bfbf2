"""kproxy/modes.py is the one list of proxy modes: every consumer knows each registered mode, and
no module lists modes of its own (adding a mode touches one ModeSpec plus the mode's package)."""
from __future__ import annotations

import ast
import importlib
import os
import runpy
import subprocess
import sys
from unittest import mock

import pytest

from kproxy import modes
from kproxy.agent import automode
from kproxy.agent import backend as backends
from kproxy.agent.config import AgentConfig, ConfigError, load_config
from kproxy.rules import adapter as rules_adapter
from kproxy.rules import detect
from kproxy.vm import harness
from tests.e2e import helpers as e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAMES = modes.names()

# Literals that name several modes on purpose, each with why it is not a list of modes:
ALLOWED_MODE_LISTS = {
    # the KubeProxyConfiguration schema: upstream defines one options section per mode
    ("kproxy/agent/config.py", "_SECTIONS"),
}


def test_the_registry_is_well_formed():
    assert len(set(NAMES)) == len(NAMES) and modes.DEFAULT in NAMES
    for ranks in ([s.auto_rank for s in modes.MODES], [s.detect_rank for s in modes.MODES]):
        assert sorted(ranks) == list(range(len(modes.MODES)))
    assert modes.spec("no-such-mode") is None


@pytest.mark.parametrize("name", NAMES)
def test_each_mode_names_classes_that_exist_and_agree(name):
    spec = modes.spec(name)
    backend_cls = getattr(importlib.import_module(spec.backend[0]), spec.backend[1])
    assert issubclass(backend_cls, backends.Backend) and backend_cls.name == name
    adapter = getattr(importlib.import_module(spec.adapter[0]), spec.adapter[1])()
    assert adapter.mode == name
    assert spec.sync_section in {f.name for f in AgentConfig.__dataclass_fields__.values()}
    if spec.package is not None:
        assert os.path.isfile(os.path.join(ROOT, spec.package, "__init__.py"))


@pytest.mark.parametrize("name", NAMES)
def test_every_consumer_knows_the_mode(name):
    spec = modes.spec(name)
    assert name in backends.names()
    assert backends.get(name).name == name
    assert rules_adapter.adapter_for(name).mode == name
    assert name in automode.PREFERENCE
    assert name in detect.MODES and name in detect.KERNEL_ORDER
    assert spec.package is None or spec.package in harness.PROJECT_PACKAGES
    assert (name in e2e.HOST_MODES) is not spec.needs_vm
    probe = e2e.probe_for(name)
    assert all(callable(getattr(probe, m, None)) for m in ("rules_text", "break_dispatch", "has_kproxy_rules"))


@pytest.mark.parametrize("name", NAMES)
def test_the_config_reads_the_modes_sync_section(name, tmp_path):
    section = modes.spec(name).sync_section

    def config_file(sync_period: str) -> str:
        path = tmp_path / "config.yaml"
        path.write_text(f"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
                        f"mode: {name}\n{section}:\n  syncPeriod: {sync_period}\n  minSyncPeriod: 3s\n")
        return str(path)

    config = load_config(config_file("7s"))
    assert (config.sync_period, config.min_sync_period) == (7.0, 3.0)
    with pytest.raises(ConfigError, match=f"{section}.syncPeriod"):
        load_config(config_file("0s"))


def test_orders_follow_the_ranks():
    assert automode.PREFERENCE == tuple(s.name for s in sorted(modes.MODES, key=lambda s: s.auto_rank))
    assert detect.KERNEL_ORDER == tuple(s.name for s in sorted(modes.MODES, key=lambda s: s.detect_rank))
    assert AgentConfig().mode == detect.DEFAULT_MODE == modes.DEFAULT


def test_setup_installs_each_modes_folder_as_a_kproxy_subpackage():
    with mock.patch("setuptools.setup") as setup, mock.patch.dict(os.environ, {"KPROXY_NO_CYTHON": "1"}), \
            mock.patch.object(sys, "argv", ["setup.py"]):
        runpy.run_path(os.path.join(ROOT, "setup.py"))
    kwargs = setup.call_args.kwargs
    for package in modes.top_level_packages():
        assert f"kproxy.{package}" in kwargs["packages"]
        assert kwargs["package_dir"][f"kproxy.{package}"] == package


def test_setup_reads_the_registry_without_importing_kproxy():
    # setup.py runs before kproxy is installed: modes.py must work with the standard library only.
    code = ("import runpy, sys; g = runpy.run_path('kproxy/modes.py'); "
            "assert not any(m == 'kproxy' or m.startswith('kproxy.') for m in sys.modules); "
            "print(','.join(g['top_level_packages']()))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().split(",") == list(modes.top_level_packages())


def _mode_lists(path: str) -> list[tuple[int, str, list[str]]]:
    """(line, name it is assigned to or "", modes) of each literal tuple/list/set/dict (keys) in
    `path` that names two or more registered modes."""
    tree = ast.parse(open(path).read())
    owner: dict[int, str] = {}  # id(node) -> the outermost assignment target holding it
    for stmt in ast.walk(tree):
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            name = ",".join(t.id for t in targets if isinstance(t, ast.Name))
            for node in ast.walk(stmt.value):
                owner.setdefault(id(node), name)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            elts = node.elts
        elif isinstance(node, ast.Dict):
            elts = [k for k in node.keys if k is not None]
        else:
            continue
        named = sorted({e.value for e in elts if isinstance(e, ast.Constant) and e.value in NAMES})
        if len(named) >= 2:
            found.append((node.lineno, owner.get(id(node), ""), named))
    return sorted(found)


def _sources() -> list[str]:
    """The project's Python files that are not test cases (tests/**/test_*.py hold per-mode cases,
    tests/flows/runner.py each host mode's offline kernel view).
    A walk, not `git ls-files`: the check also runs in an unpacked source tree without .git."""
    found = []
    for top in ("setup.py", "kproxy", "iptables", "nftables", "ipvs", "tests", "bench", "scripts"):
        if top.endswith(".py"):
            found.append(top)
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found += [os.path.relpath(os.path.join(folder, f), ROOT) for f in files if f.endswith(".py")]
    exempt = {"kproxy/modes.py", "tests/flows/runner.py"}
    return [p for p in found if p not in exempt and not os.path.basename(p).startswith("test_")]


def test_no_module_lists_modes_of_its_own():
    offenders = []
    for path in _sources():
        for line, target, named in _mode_lists(os.path.join(ROOT, path)):
            if (path, target) not in ALLOWED_MODE_LISTS:
                offenders.append(f"{path}:{line} {target or '<literal>'} lists {named}")
    assert not offenders, "read kproxy/modes.py instead of listing modes:\n" + "\n".join(offenders)


def test_the_scan_finds_a_mode_list(tmp_path):
    # the check above cannot pass by finding nothing: it does find the kind of list it forbids
    sample = tmp_path / "sample.py"
    sample.write_text('ORDER = ("ipvs", "nftables")\nfor m in ["iptables", "userspace"]:\n    pass\n')
    assert [(line, target) for line, target, _ in _mode_lists(str(sample))] == [(1, "ORDER"), (2, "")]
    assert {"setup.py", "kproxy/agent/automode.py", "ipvs/backend.py", "tests/e2e/helpers.py"} <= set(_sources())


@pytest.mark.parametrize("name", NAMES)
def test_a_backend_without_a_config_reads_the_config_modules_defaults(name):
    """config.py owns every default: a backend given no configuration works from AgentConfig()'s
    (typed as agent.protocols.BackendConfig), never from defaults of its own."""
    backend = backends.get(name)(None, None)
    try:
        assert backend.config == AgentConfig()
        assert backend.netns.name is None  # no namespace: the process's own
    finally:
        backend.close()
