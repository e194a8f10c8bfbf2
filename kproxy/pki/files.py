"""Writing secrets to disk: 0600 files in 0700 directories, replaced atomically so a reader
never sees half a key."""
from __future__ import annotations

import os
import tempfile

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: str) -> str:
    """Creates `path` (and parents) if needed and makes it 0700. Returns the path."""
    os.makedirs(path, mode=PRIVATE_DIR_MODE, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def write_private(path: str, data: bytes) -> None:
    """Writes `data` to `path` with mode 0600 (temp file in the same directory + rename);
    the file is never readable by others, not even while being written."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, PRIVATE_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
