"""The apiserver's data directory is private: it holds the store (every Secret and token), the
PKI keys, the kubeconfigs and the audit log. `make_private` is run at start: the directory and
its PKI directory become 0700, the files in them 0600, whatever the umask or an earlier
version left behind; each change is logged once."""
from __future__ import annotations

import logging
import os
import stat

from kproxy.pki.bootstrap import PKI_DIR
from kproxy.pki.files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE

log = logging.getLogger(__name__)


def make_private(data_dir: str) -> list[str]:
    """Creates `data_dir` if missing and takes away every group/other permission in it
    (symlinks are left alone, not followed). Returns the paths whose mode it changed."""
    os.makedirs(data_dir, mode=PRIVATE_DIR_MODE, exist_ok=True)
    fixed = []
    for path, wanted in _entries(data_dir):
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, wanted)
            fixed.append(path)
            log.warning("%s was %s, made it %s: the data dir holds keys and tokens",
                        path, oct(mode), oct(wanted))
    return fixed


def _entries(data_dir: str):
    """The data dir, the files directly in it (store, kubeconfigs, audit log) and the PKI tree;
    other directories an operator keeps there are not ours to change."""
    yield data_dir, PRIVATE_DIR_MODE
    for entry in os.scandir(data_dir):
        if entry.is_file(follow_symlinks=False):
            yield entry.path, PRIVATE_FILE_MODE
    pki = os.path.join(data_dir, PKI_DIR)
    if os.path.isdir(pki) and not os.path.islink(pki):
        for root, _dirs, files in os.walk(pki):
            yield root, PRIVATE_DIR_MODE
            for name in files:
                path = os.path.join(root, name)
                if not os.path.islink(path):
                    yield path, PRIVATE_FILE_MODE
