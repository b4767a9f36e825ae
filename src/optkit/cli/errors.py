"""Map exceptions to one-line messages and exit codes (after huggingface_hub's ``cli/_errors.py``).

An :class:`~optkit.errors.OptkitError` prints ``<kind>: <message> (hint: ...)`` and exits with its
code. A file-system ``OSError`` that escaped untyped (permissions, read-only mount, missing or
wrong kind of path, full disk) is the user's problem too: exit 2, one line naming the path and the
fix. A stop by SIGINT, SIGTERM or SIGHUP exits ``128 + signal`` (130, 143, 129). Anything else is a
bug: exit 3 with one line, and the traceback only when ``OPTKIT_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TypeVar

from optkit import interrupts
from optkit.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, OptkitError, debug_enabled

T = TypeVar("T")
EXIT_INTERRUPTED = 130  # SIGINT; SIGTERM 143, SIGHUP 129 (see optkit.interrupts.exit_code)

#: errno → the fix, for file-system errors that reach the CLI as a plain OSError
FS_HINTS = {
    errno.EACCES: "check the permissions of that path, or choose another one (-o, --data, TMPDIR)",
    errno.EPERM: "check the permissions of that path, or choose another one (-o, --data, TMPDIR)",
    errno.EROFS: "that file system is read-only: choose a writable -o folder (and TMPDIR)",
    errno.ENOENT: "check that the path and its folders exist",
    errno.ENOTDIR: "a part of that path is a file, not a folder: check the path",
    errno.EISDIR: "that path is a folder: pass a file",
    errno.EEXIST: "that path exists already: remove it or choose another one",
    errno.ENOTEMPTY: "that folder is not empty: choose another one",
    errno.ENAMETOOLONG: "use a shorter path",
    errno.ELOOP: "that path has a symbolic-link loop: fix the links",
    errno.EXDEV: "keep -o and its parent folder on one file system",
    errno.EBUSY: "that path is in use (a mount point?): choose another one",
    errno.ETXTBSY: "that file is in use: choose another path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.ENFILE: "too many open files: raise the limit (ulimit -n)",
    errno.EIO: "the device reports an I/O error: check the disk",
    errno.EFBIG: "the file is too large for that file system: choose another -o",
}
FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def os_error_line(exc: OSError) -> str | None:
    """The one line for a file-system ``OSError`` (naming its path and the fix), or None when
    ``exc`` is not a file-system error (e.g. a network error: a bug, reported as internal)."""
    where = exc.filename or "temporary files"
    if exc.filename2:
        where = f"{exc.filename} → {exc.filename2}"
    if exc.errno in FULL_DISK:
        return (
            f"output error: no space left on the device ({where}); nothing was written (hint: free disk "
            "space, or point TMPDIR and -o at a larger disk)"
        )
    if exc.errno is None or exc.errno not in FS_HINTS:
        return None
    hint = FS_HINTS[exc.errno]
    reason = exc.strerror or os.strerror(exc.errno)
    return " ".join(f"file system error: {reason}: {where} (hint: {hint})".split())


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn`` and return its result; on error print one line to stderr and exit.

    Raises:
        SystemExit: the :class:`~optkit.errors.OptkitError`'s code; 2 for a file-system ``OSError``;
            ``128 + signal`` when stopped by SIGINT/SIGTERM/SIGHUP; 3 for anything else (a bug).
    """
    interrupts.install()
    try:
        return fn()
    except OptkitError as exc:
        if debug_enabled():
            traceback.print_exc()
        print(exc.one_line(), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        line = os_error_line(exc)
        if line is None:
            return _internal(exc)
        if debug_enabled():
            traceback.print_exc()
        print(line, file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt as exc:
        code = interrupts.exit_code(exc)
        by = "" if code == EXIT_INTERRUPTED else f" by {signal.Signals(code - 128).name}"
        print(f"interrupted{by}: nothing was written (temporary files removed)", file=sys.stderr)
        raise SystemExit(code) from None
    except Exception as exc:  # a bug: keep it to one line unless debugging
        return _internal(exc)


def _internal(exc: Exception):
    if debug_enabled():
        traceback.print_exception(exc)
    first = (str(exc).splitlines() or [""])[0][:300]
    print(
        f"internal error: {type(exc).__name__}: {first} (set OPTKIT_DEBUG=1 for the traceback, and please report it)",
        file=sys.stderr,
    )
    raise SystemExit(EXIT_INTERNAL) from None
