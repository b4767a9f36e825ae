"""Confine the calling process with the Linux Landlock LSM, through three syscalls and ctypes.

Landlock (Linux 5.13+) lets an unprivileged process restrict itself, irreversibly, and every child
it starts afterwards: files and folders it may open, TCP ports it may bind/connect (ABI 4+), and,
from ABI 6, abstract unix sockets and signals that cross the domain. Only ``handled`` rights are
restricted; each rule grants some of them back beneath one file or folder.

Sources:
* Linux ``Documentation/userspace-api/landlock.rst`` (https://docs.kernel.org/userspace-api/landlock.html):
  rights per ABI, best-effort degradation, file-only rights, ``no_new_privs`` before enforcing.
* ``include/uapi/linux/landlock.h``: struct layouts and flag values.
* prctl(2): ``PR_SET_NO_NEW_PRIVS`` (38), ``PR_SET_PDEATHSIG`` (1).

The syscall numbers 444-446 are those of the unified syscall table (x86_64 and aarch64 alike).
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import signal
import stat
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from optkit.errors import SandboxUnavailable
from optkit.sandbox import mounts, network
from optkit.sandbox.seccomp import SocketFilter

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
_MACHINES = {"x86_64", "amd64", "aarch64", "arm64"}

# LANDLOCK_ACCESS_FS_*
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the only rights a file rule may hold
READ_RIGHTS = EXECUTE | READ_FILE | READ_DIR
# LANDLOCK_ACCESS_NET_* (ABI 4) and LANDLOCK_SCOPE_* (ABI 6)
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in landlock.h: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: object) -> int:
    """Run syscall(2); return its result, or ``-errno`` on failure."""
    call = _libc().syscall
    call.restype = ctypes.c_long
    result = call(ctypes.c_long(number), *args)
    return -ctypes.get_errno() if result == -1 else result


def _prctl(option: int, arg: int) -> None:
    libc = _libc()
    zero = ctypes.c_ulong(0)
    if libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), zero, zero, zero) != 0:
        err = ctypes.get_errno()
        raise SandboxUnavailable(f"prctl({option}) failed: {os.strerror(err)}", "run the worker on Linux")


def abi_version() -> int:
    """The Landlock ABI version of the running kernel (``landlock_create_ruleset`` with the VERSION flag).

    Returns:
        the ABI (1 = Linux 5.13; 4 adds TCP, 6 adds scopes), or 0 when Landlock is unavailable:
        not Linux, an unsupported architecture, a kernel without Landlock (``ENOSYS``), Landlock not
        in the boot LSM list (``EOPNOTSUPP``) or the syscall blocked by seccomp (``EPERM``/``ENOSYS``).
        Never raises.
    """
    if not sys.platform.startswith("linux") or platform.machine().lower() not in _MACHINES:
        return 0
    try:
        version = _syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    except OSError:  # no libc to load
        return 0
    return max(int(version), 0)


@dataclass(frozen=True)
class Confinement:
    """What :func:`confine` actually applied; recorded in the manifest.

    Attributes:
        abi: the Landlock ABI the rules were built for.
        filesystem: whether Landlock filesystem rules are in force.
        network: ``"landlock-tcp+netns"``, ``"landlock-tcp"`` (TCP only: UDP still works),
            ``"netns"`` (no Landlock TCP rules, ABI < 4) or ``"none"``.
        scopes: the Landlock scopes in force, e.g. ``("abstract-unix-socket", "signal")`` (ABI 6+).
        read_only: the paths given read/execute rules (missing ones were skipped).
        writable: the paths given every right.
        private_shm: ``/dev/shm`` is a private tmpfs of the worker (see :mod:`optkit.sandbox.mounts`),
            so what it writes there never reaches the host.
        sockets: ``"blocked"`` when the seccomp filter of :mod:`optkit.sandbox.seccomp` is in force
            (``socket(2)`` denied for every family, so no pathname unix socket such as
            ``/var/run/docker.sock`` is reachable), ``"not-blocked"`` otherwise (no libseccomp, not
            Linux, ``block_network=False``).
    """

    abi: int
    filesystem: bool
    network: str
    scopes: tuple[str, ...]
    read_only: tuple[str, ...]
    writable: tuple[str, ...]
    private_shm: bool = False
    sockets: str = "not-blocked"

    def to_dict(self) -> dict:
        """A JSON-serialisable dict (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def default_paths(
    model_paths: Iterable[Path], scratch: Path, forbidden: Iterable[Path] | None = None
) -> tuple[list[Path], list[Path]]:
    """The ``(read_only, writable)`` paths a worker running Python + ML frameworks needs.

    Read/execute: ``sys.prefix``, ``sys.base_prefix``, every existing ``sys.path`` entry (except
    ``""``/the current folder, and any entry that is the user's home or the temp folder or contains
    them), the optkit package itself (an editable install is not on ``sys.path``), the system
    folders ``/usr /lib /lib64 /bin /sbin /etc /sys /dev /opt`` that exist, ``/proc`` without other
    processes' folders (the worker keeps its own ``/proc/self``; its children see only the system
    entries), and the model paths exactly as given (a file grants only itself, never its folder:
    pass :func:`optkit.sandbox.read_paths.model_read_paths` of the model, which adds its companion
    files and ONNX external data).
    Writable: ``scratch``, ``/dev/null``, ``/dev/zero`` and ``/dev/shm`` (multiprocessing, torch).
    Not the user's home (run the worker with ``HOME=scratch``) nor ``/tmp`` (``TMPDIR=scratch``).

    Args:
        model_paths: the model files or folders the worker must read (each granted as is).
        scratch: the worker's private writable folder.
        forbidden: folders never granted through a ``sys.path`` entry (default: this process's home
            and temp folder; the worker passes optkit's real ones, since its own ``HOME`` and
            ``TMPDIR`` point into its scratch folder).

    Returns:
        two lists of absolute paths, each without duplicates. Never raises.
    """
    forbidden = (
        [*(Path(p).resolve() for p in forbidden)]
        if forbidden is not None
        else [Path.home().resolve(), Path(tempfile.gettempdir()).resolve()]
    )
    forbidden.append(Path("/"))
    read = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path(__file__).resolve().parents[1]]
    for entry in sys.path:
        if not entry or entry == ".":
            continue
        path = Path(entry).resolve()
        if path.exists() and not _grants_any(path, forbidden):
            read.append(path)
    read += [
        Path(p) for p in ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/sys", "/dev", "/opt") if Path(p).exists()
    ]
    read += _proc_entries()
    read += [Path(model).resolve() for model in model_paths]
    writable = [Path(scratch).resolve()] + [Path(p) for p in ("/dev/null", "/dev/zero", "/dev/shm") if Path(p).exists()]
    return list(dict.fromkeys(read)), list(dict.fromkeys(writable))


def _proc_entries() -> list[Path]:
    """``/proc`` without the folders of other processes (``/proc/self`` resolves in the worker at confine time).

    Landlock denies ptrace *attach* (``/proc/PID/mem``) across domains but not *read* mode, so with
    all of ``/proc`` the worker could read its parent's ``/proc/PID/environ`` (seen on Linux 6.18).
    """
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [Path("/proc", name) for name in sorted(names) if not name.isdigit()]


def _grants_any(path: Path, forbidden: list[Path]) -> bool:
    """Whether ``path`` is one of ``forbidden`` or an ancestor of one (a rule on it would grant them)."""
    return any(path == other or path in other.parents for other in forbidden)


def _handled_fs(abi: int) -> int:
    rights = FS_ABI1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _add_rules(ruleset: int, paths: Iterable[Path], rights: int) -> tuple[str, ...]:
    """Add a path-beneath rule per existing path (file rules keep only file rights); skip missing ones."""
    added = []
    for path in paths:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SandboxUnavailable(
                f"cannot open {path} for a Landlock rule: {exc.strerror}", "leave the path out of the sandbox's paths"
            ) from exc
        try:
            allowed = rights if stat.S_ISDIR(os.fstat(fd).st_mode) else rights & FILE_RIGHTS
            attr = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
            result = _syscall(
                SYS_ADD_RULE,
                ctypes.c_int(ruleset),
                ctypes.c_int(RULE_PATH_BENEATH),
                ctypes.byref(attr),
                ctypes.c_uint32(0),
            )
        finally:
            os.close(fd)
        if result < 0:
            raise SandboxUnavailable(
                f"landlock_add_rule failed for {path}: {os.strerror(-result)}", "report this as an optkit bug"
            )
        added.append(str(path))
    return tuple(added)


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def confine(read_only: Iterable[Path], writable: Iterable[Path], *, block_network: bool = True) -> Confinement:
    """Irreversibly confine the calling process and every child it starts afterwards.

    Steps: with ``block_network``, ``unshare(CLONE_NEWNET)`` (best effort, see
    :mod:`optkit.sandbox.network`); ``PR_SET_NO_NEW_PRIVS``; a Landlock ruleset handling every
    filesystem right of the running ABI (ABI 1 base set, ``REFER`` from 2, ``TRUNCATE`` from 3,
    ``IOCTL_DEV`` from 5) with read/execute rules on ``read_only`` and all rights on ``writable``
    (a file gets only file rights; missing paths are skipped); with ``block_network`` and ABI >= 4,
    TCP bind+connect handled with no rule (denied); ABI >= 6, abstract unix sockets and signals
    scoped to the domain. Landlock also denies ptrace attach (``/proc/PID/mem``) of processes
    outside the domain, and mount changes. Then, with ``block_network``, the seccomp filter of
    :mod:`optkit.sandbox.seccomp` (best effort: ``socket(2)`` fails with ``EACCES`` for every
    family, ``socketpair(2)`` stays for ``AF_UNIX`` streams, io_uring off); without libseccomp the
    record says ``sockets="not-blocked"`` and pathname unix sockets stay reachable.

    Call it before any thread starts (before importing numpy/torch): ``landlock_restrict_self``
    confines only the calling thread (and its later children), so a process with several threads
    is refused rather than left half-confined.

    Args:
        read_only: files/folders to read and execute.
        writable: files/folders with every right (create, write, delete beneath them).
        block_network: deny TCP through Landlock, enter a new network namespace and deny
            socket creation through seccomp.

    Returns:
        the :class:`Confinement` applied.

    Raises:
        SandboxUnavailable: ``abi_version() == 0``, the process has several threads, a path cannot
            be opened (other than missing), or a syscall fails (then the process may already be in
            a new network namespace or have ``no_new_privs`` set; do not run untrusted code).
    """
    abi = abi_version()
    if abi == 0:
        raise SandboxUnavailable(
            "Landlock is not available on this system (Linux 5.13+ with landlock in the LSM list)",
            "run the worker on a Linux kernel with Landlock enabled",
        )
    if _threads() > 1:
        raise SandboxUnavailable(
            f"cannot confine a process with {_threads()} threads (Landlock confines one thread)",
            "call confine() before importing numpy/torch or starting threads",
        )
    netns = network.enter_new_netns() if block_network else False
    shm = mounts.private_dev_shm()  # before Landlock, which denies mount changes
    # Built (libseccomp loaded) before Landlock; loaded after it, once the mandatory part holds.
    sockets = SocketFilter() if block_network else None
    handled_net = NET_BIND_TCP | NET_CONNECT_TCP if block_network and abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = _RulesetAttr(handled_access_fs=_handled_fs(abi), handled_access_net=handled_net, scoped=scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct as the running ABI knows it
    ruleset = _syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise SandboxUnavailable(
            f"landlock_create_ruleset failed: {os.strerror(-ruleset)}", "report this as an optkit bug"
        )
    try:
        ro = _add_rules(ruleset, [Path(p) for p in read_only], READ_RIGHTS)
        rw = _add_rules(ruleset, [Path(p) for p in writable], _handled_fs(abi))
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        result = _syscall(SYS_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    if result < 0:
        raise SandboxUnavailable(
            f"landlock_restrict_self failed: {os.strerror(-result)}", "report this as an optkit bug"
        )
    blocked = sockets is not None and sockets.load()
    tcp = "landlock-tcp" if handled_net else ""
    net = "+".join(part for part in (tcp, "netns" if netns else "") if part) or "none"
    scopes = ("abstract-unix-socket", "signal") if scoped else ()
    return Confinement(
        abi=abi,
        filesystem=True,
        network=net,
        scopes=scopes,
        read_only=ro,
        writable=rw,
        private_shm=shm,
        sockets="blocked" if blocked else "not-blocked",
    )


def die_with_parent() -> None:
    """Have the kernel SIGKILL the calling process when its parent thread exits (``PR_SET_PDEATHSIG``).

    A parent that died before this call is not noticed: the caller should then compare
    ``os.getppid()`` with the pid it expects. No-op off Linux.

    Raises:
        SandboxUnavailable: prctl(2) failed.
    """
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
