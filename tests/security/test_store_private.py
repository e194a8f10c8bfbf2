"""Issue 15 item 3: the data dir holds every token and key, so it is 0700 and every file in it
0600 whatever the umask; a looser data dir left from before is fixed at start, with a log line."""
from __future__ import annotations

import os
import stat

from kproxy.apiserver import datadir
from tests.apiserver.fixtures import start_apiserver


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def loose_entries(data_dir) -> list[str]:
    """Every file or directory of the data dir (recursively) that group or others may use."""
    out = [str(data_dir)] if mode(data_dir) & 0o077 else []
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = os.path.join(root, name)
            if not os.path.islink(path) and mode(path) & 0o077:
                out.append(f"{path} {oct(mode(path))}")
    return out


def test_store_and_keys_private_under_umask_022(tmp_path):
    data = tmp_path / "data"
    old = os.umask(0o022)  # the apiserver subprocess inherits it
    try:
        server = start_apiserver(data, ["--no-controllers"])
    finally:
        os.umask(old)
    data = server.data_dir
    try:
        server.http().ok("POST", "/api/v1/namespaces/default/secrets",
                         {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
        names = set(os.listdir(data))
        assert {"store.db", "store.db-wal", "store.db-shm", "admin.kubeconfig", "pki"} <= names, names
        assert loose_entries(data) == []
    finally:
        server.stop()


def test_loose_data_dir_is_fixed_at_start_and_logged(tmp_path):
    data = tmp_path / "data"
    server = start_apiserver(data, ["--no-controllers"])
    server.stop()
    data = server.data_dir
    os.chmod(data, 0o755)
    os.chmod(data / "store.db", 0o644)
    os.chmod(data / "pki", 0o755)
    os.chmod(data / "pki" / "sa.key", 0o644)
    os.chmod(data / "admin.kubeconfig", 0o644)
    assert len(loose_entries(data)) >= 5
    server.start()
    try:
        assert loose_entries(data) == []
        log = server.log_tail(200)
        assert "sa.key was 0o644, made it 0o600" in log and "store.db was 0o644" in log
    finally:
        server.stop()


def test_make_private_leaves_other_directories_alone(tmp_path):
    (tmp_path / "pki").mkdir(mode=0o755)
    (tmp_path / "pki" / "ca.key").write_text("k")
    os.chmod(tmp_path / "pki" / "ca.key", 0o644)
    (tmp_path / "store.db").write_text("")
    os.chmod(tmp_path / "store.db", 0o666)
    (tmp_path / "operator-notes").mkdir(mode=0o755)
    (tmp_path / "operator-notes" / "readme").write_text("x")
    os.chmod(tmp_path / "operator-notes" / "readme", 0o644)
    os.chmod(tmp_path, 0o755)
    fixed = datadir.make_private(str(tmp_path))
    assert sorted(os.path.relpath(p, tmp_path) for p in fixed) == [".", "pki", "pki/ca.key", "store.db"]
    assert mode(tmp_path) == 0o700 and mode(tmp_path / "store.db") == 0o600
    assert mode(tmp_path / "operator-notes") == 0o755  # not the apiserver's
    assert datadir.make_private(str(tmp_path)) == []
