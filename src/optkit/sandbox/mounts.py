"""Best-effort private ``/dev/shm``: a fresh tmpfs in a new mount namespace of the calling process.

``/dev/shm`` must stay writable for a worker (Python's multiprocessing semaphores, joblib/loky and
torch put files there), but it is shared by the whole machine and outlives the process: a model
could leave files there. Mounted privately, whatever the worker writes there lives in its own
tmpfs, invisible to the host, and vanishes with the worker.

Steps (mount_namespaces(7), mount(2)): ``unshare(CLONE_NEWNS)`` (needs ``CAP_SYS_ADMIN`` in the
current user namespace: root, or after :func:`optkit.sandbox.network.enter_new_netns` entered a
new user namespace), make every mount private (``MS_REC | MS_PRIVATE`` on ``/``, so nothing
propagates back to the host), then mount a tmpfs on ``/dev/shm``. Must run before Landlock, which
denies mount changes.
"""

from __future__ import annotations

import ctypes
import sys

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000


def private_dev_shm(size: str = "2g") -> bool:
    """Give the calling process (and its later children) a private, empty ``/dev/shm`` tmpfs.

    Args:
        size: the tmpfs size limit (``mount -o size=``).

    Returns:
        ``True`` when ``/dev/shm`` is now private, ``False`` when it could not be done (not Linux,
        no privilege, several threads, no ``/dev/shm``). Never raises; on ``False`` the caller keeps
        the host's ``/dev/shm``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if libc.unshare(ctypes.c_int(CLONE_NEWNS)) != 0:
        return False
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        return False
    return (
        libc.mount(
            b"tmpfs", b"/dev/shm", b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV), f"size={size},mode=1777".encode()
        )
        == 0
    )
