"""Where a search keeps its Ray Tune experiments: a folder, or a URI of a file system Ray reaches (``s3://``, ``gs://``).

``storage=`` is either; these functions are the one place that tells them apart and joins names onto them, so the
rest of the search never does ``Path`` arithmetic on a URI. Ray Tune (through pyarrow) reads and writes both.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

PROBE_LOCK_FOLDER = "attnas-probe"  # under the node's temp folder: the exclusive probe slots' lock files


def is_uri(storage: str) -> bool:
    """Whether ``storage`` is a URI (``s3://bucket/x``, ``gs://...``, ``file:///...``) rather than a folder path."""
    return "://" in storage


def resolve(storage: str) -> str:
    """A folder as an absolute path (``~`` expanded); a URI as given, without a trailing slash."""
    return storage.rstrip("/") if is_uri(storage) else str(Path(storage).expanduser().resolve())


def join(storage: str, *names: str) -> str:
    """``storage/name/...`` for a resolved folder or URI (:func:`resolve`)."""
    return "/".join([storage.rstrip("/"), *names]) if is_uri(storage) else str(Path(storage, *names))


def split(location: str) -> tuple[str, str]:
    """``(parent, name)`` of a joined location: what Ray Tune takes as ``storage_path`` and ``name``."""
    parent, _, name = location.rstrip("/").rpartition("/")
    return parent, name


def probe_lock_path(storage: str, *, name: str) -> Path:
    """The lock file of the search's exclusive probe slot (``trials.ProbeSlot``): in the node's own temp folder,
    never in ``storage``, since trials on different nodes do not share cores (and a lock on a shared folder would
    make them wait for each other). Keyed by the search's name and storage, so two searches never share one."""
    key = hashlib.sha256(join(storage, name).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / PROBE_LOCK_FOLDER / f"{name}-{key}.lock"
