"""Map exceptions to one-line messages and exit codes (after huggingface_hub's ``cli/_errors.py``).

An :class:`~optkit.errors.OptkitError` prints ``<kind>: <message> (hint: ...)`` and exits with its
code. Anything else is a bug: exit 3 with one line, and the traceback only when ``OPTKIT_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Callable, TypeVar

from optkit import interrupts
from optkit.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, OptkitError

T = TypeVar("T")
EXIT_INTERRUPTED = 130


def debug_enabled() -> bool:
    """True when ``OPTKIT_DEBUG`` is set to 1/true/yes."""
    return os.environ.get("OPTKIT_DEBUG", "").lower() in ("1", "true", "yes")


def guarded(fn: Callable[[], T]) -> T:
    """Run ``fn``; on error print one line to stderr and exit with the error's code."""
    interrupts.install()
    try:
        return fn()
    except OptkitError as exc:
        if debug_enabled():
            traceback.print_exc()
        print(exc.one_line(), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal(exc)
        print(f"output error: no space left on the device ({exc.filename or 'temporary files'}); nothing was "
              "written (hint: free disk space, or point TMPDIR and -o at a larger disk)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None
    except KeyboardInterrupt:
        print("interrupted: nothing was written (temporary files removed)", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # a bug: keep it to one line unless debugging
        return _internal(exc)


def _internal(exc: Exception):
    if debug_enabled():
        traceback.print_exception(exc)
    first = (str(exc).splitlines() or [""])[0][:300]
    print(f"internal error: {type(exc).__name__}: {first} (set OPTKIT_DEBUG=1 for the traceback, "
          "and please report it)", file=sys.stderr)
    raise SystemExit(EXIT_INTERNAL) from None
