"""The I/O of `kproxy install`: comparing rendered files with what is on disk, writing them,
and systemctl.

Guarantees: `check_conflicts` refuses (InstallError naming the file) when a file exists with
other content or mode and `force` is off, before anything is written; `write_files` replaces
each file atomically with its mode set before it appears (keys are never readable by others);
`uninstall` removes only what an install writes.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import yaml

from kproxy import modes
from kproxy.agent.automode import AUTO
from kproxy.install.render import PRIVATE, UNITS, File, Layout
from kproxy.pki.files import write_private

NEW, UNCHANGED, DIFFERS = "new", "unchanged", "differs"


class InstallError(Exception):
    """One line for the operator."""


@dataclass(frozen=True)
class Planned:
    file: File
    status: str  # NEW, UNCHANGED or DIFFERS


def plan(files: list[File]) -> list[Planned]:
    out = []
    for f in files:
        try:
            with open(f.path, "rb") as fh:
                status = UNCHANGED if fh.read() == f.content and _mode(f.path) == f.mode else DIFFERS
        except FileNotFoundError:
            status = NEW
        except OSError as exc:
            raise InstallError(f"{f.path}: {exc.strerror}") from None
        out.append(Planned(f, status))
    return out


def _mode(path: str) -> int:
    return os.stat(path).st_mode & 0o777


def check_conflicts(planned: list[Planned], force: bool) -> None:
    differs = [p.file.path for p in planned if p.status == DIFFERS]
    if differs and not force:
        more = f" (and {len(differs) - 1} more)" if len(differs) > 1 else ""
        raise InstallError(f"{differs[0]}{more} exists with different content; give --force to replace it")


def write_files(planned: list[Planned], layout: Layout) -> None:
    for d in (layout.etc, os.path.join(layout.etc, "pki"), layout.units, os.path.dirname(layout.sysctl_file)):
        os.makedirs(d, mode=0o755, exist_ok=True)
    for d in (layout.data, layout.kubelet_root):
        os.makedirs(d, mode=0o700, exist_ok=True)
    for p in planned:
        if p.status == UNCHANGED:
            continue
        os.makedirs(os.path.dirname(p.file.path), mode=0o700 if p.file.mode == PRIVATE else 0o755, exist_ok=True)
        write_private(p.file.path, p.file.content)  # created 0600, renamed into place
        if p.file.mode != PRIVATE:
            os.chmod(p.file.path, p.file.mode)


def describe(planned: list[Planned]) -> list[str]:
    return [f"{p.status:9} {p.file.mode:04o} {p.file.path}" for p in planned]


def run_command(argv: list[str]) -> None:
    """Runs systemctl, sysctl or kproxy cleanup; a failure becomes one line naming the command."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise InstallError(f"{argv[0]} not found: is this a systemd machine? (--root DIR only writes files)") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise InstallError(f"{' '.join(argv)}: {last}")


def installed_units(layout: Layout) -> list[str]:
    return [u for u in UNITS if os.path.exists(layout.unit(u))]


def agent_mode(layout: Layout) -> str | None:
    """The proxy mode the installed agent runs (to remove its rules at uninstall)."""
    try:
        with open(layout.agent_config) as f:
            mode = (yaml.safe_load(f) or {}).get("mode")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return mode if isinstance(mode, str) else None


def removable(layout: Layout) -> list[str]:
    """What `uninstall` would remove."""
    paths = [layout.unit(u) for u in installed_units(layout)]
    if _same_content(layout.root_kubeconfig, layout.admin_kubeconfig):
        paths.append(layout.root_kubeconfig)
    if os.path.exists(layout.sysctl_file):
        paths.append(layout.sysctl_file)
    return paths + [d for d in layout.directories if os.path.isdir(d)]


def uninstall(layout: Layout, live: bool) -> list[str]:
    """Stops and removes the units (`live`: through systemctl, then the agent's rules with
    `kproxy cleanup`, every mode's when it ran `auto`), the configs, the data dir and root's
    kubeconfig when it is the admin's. Returns what was removed; a failing step raises
    InstallError before any file is removed, so running it again finishes the job."""
    units = installed_units(layout)
    mode = agent_mode(layout)
    if live and units:
        run_command(["systemctl", "disable", "--now", *units])
        if mode:
            for m in modes.names() if mode == AUTO else (mode,):
                run_command([layout.kproxy, "cleanup", "--mode", m, "--config", layout.agent_config])
    removed = removable(layout)
    for path in removed:
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    if live and units:
        run_command(["systemctl", "daemon-reload"])
    return removed


def _same_content(a: str, b: str) -> bool:
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    except OSError:
        return False
