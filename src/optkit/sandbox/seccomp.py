"""A seccomp filter that stops the worker from creating sockets (best effort, through libseccomp).

Landlock (ABI <= 7) does not govern ``connect(2)`` to an existing pathname unix socket
(``/var/run/docker.sock``, an agent's socket under ``/tmp``), and an empty network namespace does not
cover pathname unix sockets nor ``AF_VSOCK`` (which reaches a VM's host). This filter closes that:

* ``socket(2)`` fails with ``EACCES`` for **every** address family. Nothing a confined worker does
  needs a socket of its own: the network is already blocked (Landlock TCP rules, network namespace),
  and glibc falls back quietly where it tries one (``getaddrinfo``'s netlink probe, nscd/userdb
  lookups over unix sockets). A deny-all also covers families a deny-list would miss (``AF_VSOCK``,
  ``AF_ALG``, ``AF_NETLINK``, ``AF_PACKET``, ``AF_XDP``, Bluetooth, CAN, ...).
* ``socketpair(2)`` stays allowed for ``AF_UNIX`` ``SOCK_STREAM``/``SOCK_SEQPACKET`` (what
  ``multiprocessing.Pipe()``, ``socket.socketpair()`` and asyncio use): such a pair is connected to
  itself and cannot be re-pointed. Other families and ``SOCK_DGRAM`` fail with ``EACCES``: an unix
  datagram socket can ``sendto()``/``connect()`` any pathname datagram socket (``/dev/log``,
  ``/run/systemd/notify``).
* ``io_uring_setup``/``io_uring_enter``/``io_uring_register`` fail with ``ENOSYS`` (as on a kernel
  without io_uring): ``IORING_OP_SOCKET``/``IORING_OP_CONNECT`` would create and connect sockets
  without the ``socket``/``connect`` syscalls the filter sees.
* Syscalls of another ABI (i386 ``int 0x80``, x32 on x86_64) kill the thread: libseccomp's default
  "bad architecture" action, so ``socketcall(2)`` cannot go around the rules.

Library: ``pyseccomp`` (PyPI, MIT; ctypes over the system's ``libseccomp.so.2``, API-compatible with
libseccomp's own Python bindings, which are used instead when installed, e.g. Debian's
``python3-seccomp``). libseccomp builds and checks the BPF program (architecture check, x32 bit,
64-bit argument comparisons), which a hand-written program would have to get right itself.

Sources: seccomp(2), ``seccomp_rule_add(3)``, ``seccomp_init(3)``; socket(2), unix(7), io_uring(7).
"""

from __future__ import annotations

import contextlib
import errno
import sys
from typing import Any

AF_UNIX, SOCK_DGRAM, SOCK_TYPE_MASK = 1, 2, 0xF
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")


def _bindings() -> Any:
    """libseccomp's official Python bindings, else pyseccomp; ``None`` when neither loads (never raises)."""
    if not sys.platform.startswith("linux"):
        return None
    for name in ("seccomp", "pyseccomp"):
        try:
            module = __import__(name)
        except Exception:  # ImportError, or pyseccomp's RuntimeError/OSError without libseccomp.so.2
            continue
        if hasattr(module, "SyscallFilter"):
            return module
    return None


class SocketFilter:
    """A prepared (not yet loaded) filter; build it before Landlock, :meth:`load` it when confining."""

    def __init__(self) -> None:
        self._filter: Any = None
        self.error = ""
        lib = _bindings()
        if lib is None:
            self.error = "libseccomp (libseccomp.so.2 with pyseccomp) is not available"
            return
        try:
            flt = lib.SyscallFilter(lib.ALLOW)
            flt.add_rule(lib.ERRNO(errno.EACCES), "socket")
            flt.add_rule(lib.ERRNO(errno.EACCES), "socketpair", lib.Arg(0, lib.NE, AF_UNIX))
            flt.add_rule(lib.ERRNO(errno.EACCES), "socketpair", lib.Arg(1, lib.MASKED_EQ, SOCK_TYPE_MASK, SOCK_DGRAM))
            for name in IO_URING:
                with contextlib.suppress(OSError, ValueError, RuntimeError):  # a libseccomp too old to know io_uring
                    flt.add_rule(lib.ERRNO(errno.ENOSYS), name)
        except Exception as exc:  # the bindings raise OSError/ValueError/RuntimeError
            self.error = f"cannot build the seccomp filter: {exc}"
            return
        self._filter = flt

    @property
    def ready(self) -> bool:
        return self._filter is not None

    def load(self) -> bool:
        """Install the filter on the calling thread (and its later children); irreversible.

        Needs ``PR_SET_NO_NEW_PRIVS`` (set by libseccomp too) and a single-threaded process (no
        ``TSYNC``: like Landlock, it applies to the calling thread).

        Returns:
            whether the filter is now in force. Never raises; :attr:`error` says why not.
        """
        if self._filter is None:
            return False
        try:
            self._filter.load()
        except Exception as exc:
            self.error = f"seccomp_load failed: {exc}"
            return False
        return True


def block_sockets() -> bool:
    """Build and load :class:`SocketFilter` now; whether it is in force (never raises)."""
    return SocketFilter().load()
