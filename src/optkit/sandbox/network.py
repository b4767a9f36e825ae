"""Best-effort network isolation: move the calling process into a new, empty network namespace.

A new network namespace has only a loopback interface, and it is down: every IPv4/IPv6 socket
(TCP, UDP, raw) gets ``ENETUNREACH``, and abstract unix sockets of the host are out of reach
(they are per network namespace). Landlock (ABI 4+) only restricts TCP bind/connect, so the
namespace is what blocks UDP and other non-TCP traffic.

Sources: unshare(2), user_namespaces(7), network_namespaces(7) man pages.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000


def _unshare(flags: int) -> bool:
    """Call unshare(2) with ``flags``; return whether it succeeded (never raises)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    return libc.unshare(ctypes.c_int(flags)) == 0


def _map_ids(uid: int, gid: int) -> None:
    """Map ``uid``/``gid`` to themselves inside a fresh user namespace (best effort).

    Without a mapping the process would run as the overflow id (``nobody``) and could lose read
    access to its own files. Writing ``deny`` to ``setgroups`` first is required for an
    unprivileged ``gid_map`` (user_namespaces(7)). Errors are ignored: the namespace holds anyway.
    """
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
                handle.write(text)
        except OSError:
            pass


def enter_new_netns() -> bool:
    """Move the calling process (and its future children) into a new network namespace.

    Tries ``unshare(CLONE_NEWNET)`` (needs ``CAP_SYS_ADMIN``, i.e. root), then
    ``unshare(CLONE_NEWUSER | CLONE_NEWNET)`` (unprivileged, where user namespaces are enabled;
    the process must be single-threaded), mapping the current uid/gid to themselves.

    Returns:
        ``True`` when the process is now in a new network namespace, ``False`` when neither worked
        or the platform is not Linux. Never raises.
    """
    if not sys.platform.startswith("linux"):
        return False
    if _unshare(CLONE_NEWNET):
        return True
    uid, gid = os.getuid(), os.getgid()
    if _unshare(CLONE_NEWUSER | CLONE_NEWNET):
        _map_ids(uid, gid)
        return True
    return False
