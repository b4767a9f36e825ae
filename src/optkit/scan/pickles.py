"""Pickles (``.pkl``/``.joblib``, legacy ``torch.save`` files, the ``*.pkl`` entries of torch zip
archives): every import a pickle makes is checked against an **allow-list**, without unpickling.

A pickle runs code only through the callables it imports (``GLOBAL``, ``STACK_GLOBAL``, ``INST``,
extension codes), which ``REDUCE``/``NEWOBJ``/``OBJ``/``INST``/``BUILD`` then call. A deny-list of
modules cannot be complete (``timeit.timeit``, ``numpy.testing._private.utils.runstring`` and many
more run code), so each import must be one of:

* an **allowed function** (:data:`ALLOWED_FUNCTIONS`, or a ``torch._utils._rebuild_*`` function, or a
  Cython ``__pyx_unpickle_*`` reconstructor of a scikit-learn/numpy/scipy class): the reconstructors
  that pickles of numpy, scikit-learn, torch and joblib objects need; besides, tensor math a model
  keeps as an attribute (functions of ``torch.nn.functional``/``torch._C._nn``, numpy ufuncs). Every
  other function or method is refused, whatever module it is in;
* a **class** from a trusted package (:data:`TRUSTED_PREFIXES`: ``sklearn``, ``numpy``, ``scipy``,
  ``torch``, ``collections``, ``datetime``, ``decimal``, ``fractions``, ``uuid``, joblib's array
  wrappers) or a harmless builtin type (:data:`SAFE_BUILTINS`), whose own ``__module__`` is not
  dangerous either (a re-exported ``subprocess.Popen`` is refused);
* a **class from any other module** only when that module is already imported (``sys.modules``: the
  scan never imports an unknown module, since importing runs it), is not dangerous, and the class is
  a subclass of ``torch.nn.Module`` or ``sklearn.base.BaseEstimator`` (a user's own network saved
  with ``torch.save(model)``; in the worker its module is normally not imported, so such a pickle is
  refused: save a state_dict, TorchScript or torch.export instead). ``transformers`` is importable
  like the trusted packages, but only its model and config classes (``nn.Module``,
  ``PretrainedConfig``, ``GenerationConfig`` subclasses) are allowed;
* a torch ``dtype``/``layout``/``memory_format``/``qscheme`` constant (``torch.float32``).

Names in :data:`DANGEROUS_MODULES` (``os``, ``subprocess``, ``timeit``, ``functools``, ``operator``,
``builtins.eval``, ``torch.hub``, ``numpy.testing``, ``scipy.io``, ...) are refused before anything is
resolved, classes included. Names are resolved (only inside the confined worker) by importing the
named module only when it is already imported or is a submodule of a trusted package, then walking
the dotted name through classes only (never through a module attribute such as ``sklearn.base.os``).
Python 2 names are mapped as the unpickler maps them (``__builtin__`` → ``builtins``).

The pickle opcodes are decoded with the standard library's :mod:`pickletools` and a small stack
model that follows the strings ``STACK_GLOBAL`` consumes (through the memo too); a ``STACK_GLOBAL``
whose names are computed is refused. fickling (https://github.com/trailofbits/fickling) is run as a
second opinion (its *likely overtly malicious* results are findings too). joblib writes raw array
buffers inside its pickle stream: they are skipped by the size the ``NumpyArrayWrapper``'s state gives
(shape, dtype as numpy sizes it, alignment padding; object arrays are a nested pickle, decoded too),
exactly as joblib reads them; an array whose size cannot be worked out is a finding (the rest of the
stream cannot be checked). Bytes no unpickler reads (legacy ``torch.save`` storages after its five
pickles, anything after the first pickle) are searched for the byte forms of ``GLOBAL``/``INST``/
``STACK_GLOBAL`` (same policy). Compressed joblib files (zlib, gzip, bz2, xz, lzma) are decompressed
first. A stream that does not decode (empty, truncated, not a pickle) raises
:class:`~optkit.errors.SourceModelError` ("truncated or corrupt"), never a finding.

The scan is defence in depth, not proof of safety: loading a pickle still needs ``--trust-pickle``
and runs inside the confinement.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pickletools
import re
import sys
import zipfile
from pathlib import Path

from optkit.errors import SourceModelError
from optkit.scan.report import TRUST_MODEL_CODE, Finding

PICKLE_ENTRY_SUFFIXES = (".pkl", ".pickle")
PICKLE_HINT = (
    f"re-save the model without it (a .skops file, a state_dict, TorchScript or torch.export), or pass "
    f"{TRUST_MODEL_CODE} --trust-pickle to load it anyway (dangerous: the pickle then runs whatever "
    "it holds)"
)

#: Functions a pickle may import: the reconstructors numpy, scikit-learn, torch and joblib objects need.
ALLOWED_FUNCTIONS = frozenset(
    {
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "_codecs.encode",  # protocol 2 bytes
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",  # protocol 5 arrays
        "numpy.random._pickle.__generator_ctor",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.ma.core._mareconstruct",
        "torch._tensor._rebuild_from_type_v2",
        "torch.serialization._get_layout",
    }
)
#: ``torch._utils._rebuild_*`` functions allowed besides (``_rebuild_tensor_v2``, ``_rebuild_parameter``, ...).
TORCH_REBUILD_MODULE = "torch._utils"
#: Packages whose classes are trusted (``joblib.numpy_pickle`` only: the array wrappers).
TRUSTED_PREFIXES = (
    "sklearn",
    "numpy",
    "scipy",
    "torch",
    "joblib.numpy_pickle",
    "collections",
    "datetime",
    "decimal",
    "fractions",
    "uuid",
)
#: Packages the scan may import to resolve a name (its submodules are imported if needed).
IMPORTABLE_PREFIXES = ("sklearn", "numpy", "scipy", "torch", "joblib", "transformers")
#: Builtin types a pickle may reference.
SAFE_BUILTINS = frozenset(
    {
        "set",
        "frozenset",
        "dict",
        "list",
        "tuple",
        "bytearray",
        "bytes",
        "complex",
        "slice",
        "range",
        "object",
        "int",
        "float",
        "str",
        "bool",
    }
)
#: Modules (and their submodules) refused outright, classes included.
DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "posixpath",
        "ntpath",
        "sys",
        "subprocess",
        "ctypes",
        "_ctypes",
        "code",
        "codeop",
        "pty",
        "tty",
        "threading",
        "_thread",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "socket",
        "_socket",
        "ssl",
        "select",
        "selectors",
        "signal",
        "importlib",
        "imp",
        "zipimport",
        "pkgutil",
        "runpy",
        "site",
        "sysconfig",
        "pdb",
        "bdb",
        "trace",
        "profile",
        "cProfile",
        "_lsprof",
        "timeit",
        "webbrowser",
        "shutil",
        "tempfile",
        "glob",
        "pathlib",
        "io",
        "_io",
        "fileinput",
        "linecache",
        "shelve",
        "dbm",
        "sqlite3",
        "zipfile",
        "tarfile",
        "gzip",
        "bz2",
        "lzma",
        "pickle",
        "_pickle",
        "pickletools",
        "copyreg",
        "copy",
        "marshal",
        "types",
        "inspect",
        "dis",
        "ast",
        "operator",
        "_operator",
        "functools",
        "_functools",
        "itertools",
        "builtins",
        "__builtin__",
        "gc",
        "weakref",
        "atexit",
        "logging",
        "codecs",
        "_codecs",
        "urllib",
        "http",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "telnetlib",
        "xmlrpc",
        "socketserver",
        "mailbox",
        "email",
        "platform",
        "getpass",
        "resource",
        "fcntl",
        "mmap",
        "readline",
        "rlcompleter",
        "cmd",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "venv",
        "ensurepip",
        "distutils",
        "setuptools",
        "pip",
        "pydoc",
        "doctest",
        "unittest",
        "test",
        "this",
        "antigravity",
        "dill",
        "cloudpickle",
        "joblib",
        "yaml",
        "jinja2",
        "IPython",
        "_posixsubprocess",
        "_winapi",
        "winreg",
        "torch.hub",
        "torch._dynamo",
        "torch._inductor",
        "torch.utils.cpp_extension",
        "torch.utils.tensorboard",
        "torch.utils.data",
        "torch.package",
        "torch.serialization",
        "torch.storage._load_from_bytes",
        "torch.multiprocessing",
        "torch.distributed",
        "torch.jit",
        "torch.fx",
        "torch.export",
        "torch._export",
        "torch.compiler",
        "torch.profiler",
        "torch.autograd.profiler",
        "torch.library",
        "torch._ops",
        "torch.ops",
        "torch.classes",
        "torch._classes",
        "torch.testing",
        "torch.backends",
        "torch.onnx",
        "torch._C._dynamo",
        "torch._C.CompilationUnit",
        "torch._C.ScriptModule",
        "torch._C.ScriptFunction",
        "torch._C.ScriptMethod",
        "numpy.testing",
        "numpy.distutils",
        "numpy.f2py",
        "numpy.ctypeslib",
        "numpy.lib.format",
        "numpy.lib.npyio",
        "numpy.lib._npyio_impl",
        "numpy.lib._datasource",
        "numpy.lib.utils",
        "numpy.lib._utils_impl",
        "numpy.memmap",
        "numpy.core.memmap",
        "numpy._core.memmap",
        "numpy.load",
        "numpy.save",
        "numpy.fromfile",
        "numpy.DataSource",
        "scipy.io",
        "scipy.datasets",
        "scipy.weave",
        "scipy._lib._testutils",
        "scipy._lib._ccallback",
        "scipy.LowLevelCallable",
        "sklearn.datasets",
        "sklearn.utils._testing",
        "sklearn.externals",
    }
)
EXEMPT = (
    ALLOWED_FUNCTIONS
    | {f"builtins.{n}" for n in SAFE_BUILTINS}
    | {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "joblib.numpy_pickle.NDArrayWrapper",
        "joblib.numpy_pickle_compat.NDArrayWrapper",
        "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    }
)
JOBLIB_WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper"})


def fickling_version() -> str:
    """The installed fickling's version."""
    from importlib.metadata import version

    return version("fickling")


def corrupt(label: str, why: str) -> SourceModelError:
    """The :class:`SourceModelError` for a file the scan cannot decode."""
    first = (str(why).strip().splitlines() or ["no detail"])[0][:160]
    return SourceModelError(
        f"cannot scan {label}: it looks truncated or corrupt ({first})", "export or save the model again"
    )


# --- the policy ---------------------------------------------------------------------------------


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _py3_name(module: str, name: str) -> tuple[str, str]:
    """The name Python 3's unpickler resolves a Python 2 name to (``fix_imports``)."""
    import _compat_pickle as compat

    if (module, name) in compat.NAME_MAPPING:
        return compat.NAME_MAPPING[(module, name)]
    return compat.IMPORT_MAPPING.get(module, module), name


def _module(module: str) -> object | None:
    """``sys.modules[module]``, importing it only when it is inside a trusted package."""
    if module in sys.modules:
        return sys.modules[module]
    if not _within(module, IMPORTABLE_PREFIXES):
        return None
    try:
        return importlib.import_module(module)
    except Exception:  # ImportError, or a trusted module failing on import
        return None


def _exists(top: str) -> bool:
    """True when a top-level module of that name exists here (found, not imported)."""
    import importlib.util

    try:
        return top in sys.builtin_module_names or importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def _resolve(module: str, name: str) -> tuple[object | None, str]:
    """(the object, "") or (None, why): walks ``name``'s dots through classes only."""
    obj = _module(module)
    if obj is None:
        return None, "module not imported and not inside a trusted package" if not _within(
            module, IMPORTABLE_PREFIXES
        ) else "module not importable"
    parts = name.split(".")
    for i, part in enumerate(parts):
        if i and not inspect.isclass(obj):
            return None, "dotted name through a non-class"
        try:
            obj = inspect.getattr_static(obj, part) if i else getattr(obj, part)
        except AttributeError:
            return None, "no such name"
        if inspect.ismodule(obj):
            return None, "names a module"
    return obj, ""


def _is_model_class(obj: type) -> bool:
    """A subclass of ``torch.nn.Module``, ``sklearn.base.BaseEstimator`` or (a pickled Hugging Face
    model holds its config) ``transformers.PretrainedConfig``/``GenerationConfig``."""
    torch_nn = sys.modules.get("torch.nn")
    base = _module("sklearn.base") if "sklearn" in sys.modules else None
    bases = [getattr(torch_nn, "Module", None), getattr(base, "BaseEstimator", None)]
    if "transformers" in sys.modules:
        bases += [
            getattr(_module("transformers.configuration_utils"), "PretrainedConfig", None),
            getattr(_module("transformers.generation.configuration_utils"), "GenerationConfig", None),
        ]
    return any(inspect.isclass(b) and issubclass(obj, b) for b in bases)


def _torch_constant(obj: object) -> bool:
    torch = sys.modules.get("torch")
    kinds = tuple(
        getattr(torch, k)
        for k in ("dtype", "layout", "memory_format", "qscheme")
        if torch is not None and hasattr(torch, k)
    )
    return bool(kinds) and isinstance(obj, kinds)


def check_import(module: str, name: str) -> str | None:
    """Why the import ``module``/``name`` is refused, or None when the policy allows it."""
    raw = module
    module, name = _py3_name(module, name)
    full = f"{module}.{name}"
    if raw != module and _within(raw, DANGEROUS_MODULES) and _exists(raw.split(".")[0]):
        return "a module that can run code or touch files (under its own name, protocols 3 and later)"
    if full in EXEMPT:
        return None
    if _within(module, DANGEROUS_MODULES) or _within(full, DANGEROUS_MODULES):
        return "a module that can run code or touch files"
    if name.startswith("__") and not name.startswith("__pyx_unpickle_"):
        return "a dunder name"
    try:
        return _check_resolved(module, name, full)
    except Exception as exc:  # a trusted module failing on import or attribute access, odd classes
        return f"cannot check it ({type(exc).__name__})"


def _check_resolved(module: str, name: str, full: str) -> str | None:
    obj, why = _resolve(module, name)
    if obj is None:
        return f"cannot check it ({why})"
    if inspect.isclass(obj):
        home = getattr(obj, "__module__", None) or ""
        defined = f"{home}.{getattr(obj, '__qualname__', '')}"
        if _within(home, DANGEROUS_MODULES) or _within(defined, DANGEROUS_MODULES):
            return f"a class from {home}"
        if _within(module, TRUSTED_PREFIXES):
            return None if _within(home, TRUSTED_PREFIXES) or _is_model_class(obj) else f"a class from {home}"
        if _is_model_class(obj):
            return None  # a user's own nn.Module / estimator (its module already imported), a transformers model
        return "a class from an untrusted module (only torch.nn.Module / scikit-learn estimator subclasses are)"
    if module == TORCH_REBUILD_MODULE and name.startswith("_rebuild_") and callable(obj):
        return None
    if (
        module in ("torch.nn.functional", "torch._C._nn")
        and callable(obj)
        and _within(getattr(obj, "__module__", None) or "torch._C", ("torch.nn.functional", "torch._C", "torch"))
        and not _within(getattr(obj, "__module__", None) or "", DANGEROUS_MODULES)
    ):
        return None  # tensor math an nn.Module keeps as an attribute (TransformerEncoderLayer's activation)
    numpy = sys.modules.get("numpy")
    if _within(module, ("numpy",)) and numpy is not None and isinstance(obj, numpy.ufunc):
        return None  # element-wise math (FunctionTransformer(numpy.log1p))
    if name.startswith("__pyx_unpickle_") and _within(module, ("sklearn", "numpy", "scipy")) and callable(obj):
        return None
    if _within(module, ("torch",)) and _torch_constant(obj):
        return None
    if callable(obj):
        return "a function (only known reconstructors are allowed)"
    return "not a class or function"


# --- decoding -----------------------------------------------------------------------------------

STRING_OPS = frozenset(
    {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
LITERAL_OPS = STRING_OPS | {
    "INT",
    "BININT",
    "BININT1",
    "BININT2",
    "LONG",
    "LONG1",
    "LONG4",
    "FLOAT",
    "BINFLOAT",
    "BINBYTES",
    "SHORT_BINBYTES",
    "BINBYTES8",
}
PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_UNKNOWN, _MARK = object(), object()
DTYPE_RE = re.compile(r"[<>|=]?([A-Za-z])(\d*)")


class _Global:
    """What a ``GLOBAL``/``STACK_GLOBAL`` pushes (never resolved here)."""

    __slots__ = ("full",)

    def __init__(self, module: str, name: str) -> None:
        self.full = f"{module}.{name}"


class _Obj:
    """What ``REDUCE``/``NEWOBJ``/``OBJ``/``INST`` push: the callable, its arguments, its ``BUILD`` state."""

    __slots__ = ("func", "args", "state")

    def __init__(self, func: object, args: object) -> None:
        self.func, self.args, self.state = func, args, _UNKNOWN


def _literal(value: object) -> bool:
    return isinstance(value, (int, float, str, bytes, type(None))) or (
        isinstance(value, tuple) and all(_literal(v) for v in value)
    )


def _itemsize(dtype: _Obj) -> int:
    """The item size numpy gives the pickled dtype ``numpy.dtype(args[0])`` + ``__setstate__(state)``
    (numpy builds it from literals only; a structured dtype's size is its ``V<n>`` code, which must
    match the state's)."""
    import numpy

    code, state = dtype.args[0], dtype.state  # type: ignore[index]  # the caller checked that args is a tuple
    if not _literal(state):
        if isinstance(state, tuple) and len(state) > 5 and code == f"V{state[5]}":
            return int(state[5])  # structured: fields hold dtypes (no literals), the size is the code's
        raise _Undecodable(f"joblib array dtype {code!r} with a state that is not literal")
    try:
        value = numpy.dtype(code)
        value.__setstate__(state)
        return int(value.itemsize)
    except Exception as exc:
        raise _Undecodable(f"joblib array of unknown dtype {code!r} ({exc})") from exc


def _class_of(obj: _Obj) -> str | None:
    """The dotted name of the class ``obj`` was made from (through ``copyreg._reconstructor``, as
    protocols 0 and 1 do), or None."""
    func = obj.func
    if (
        isinstance(func, _Global)
        and func.full in ("copyreg._reconstructor", "copy_reg._reconstructor")
        and isinstance(obj.args, tuple)
        and obj.args
    ):
        func = obj.args[0]
    return func.full if isinstance(func, _Global) else None


class _Undecodable(Exception):
    """A joblib array whose size the state does not give: the rest is searched as raw bytes."""


class _Stream:
    """One pickle stream decoded from ``start`` by :func:`pickletools.genops` and a small model of
    the unpickler's stack and memo (literals, containers, the names ``STACK_GLOBAL`` takes): the
    imports it makes and where it ended. joblib's raw array buffers (after the ``BUILD`` of a
    ``NumpyArrayWrapper``) are skipped by the size its state gives (shape, dtype, alignment)."""

    def __init__(self, data: bytes, start: int) -> None:
        self.data = data
        self.imports: list[tuple[str, str]] = []
        self.problems: list[str] = []  # imports that cannot be named (computed STACK_GLOBAL, EXT codes)
        self.end = start
        self.error: str | None = None
        self.unsized_array = False  # stopped at a joblib array of unknown size
        self.stack: list[object] = []
        self.memo: dict[object, object] = {}
        handle = io.BytesIO(data)
        handle.seek(start)
        try:
            for op, arg, pos in pickletools.genops(handle):
                if pos is not None:  # always, for a BytesIO
                    self.end = pos
                skip_to = self._step(op.name, op, arg, handle.tell())
                if skip_to is not None:
                    if skip_to > len(data):
                        raise ValueError("a joblib array buffer runs past the end of the file")
                    handle.seek(skip_to)
            self.end = handle.tell()
        except _Undecodable as exc:
            self.error, self.unsized_array, self.end = str(exc), True, handle.tell()
        except Exception as exc:  # ValueError from genops: unknown opcode, truncated data
            self.error = str(exc) or type(exc).__name__

    def _pop(self) -> object:
        return self.stack.pop() if self.stack else _UNKNOWN

    def _pop_mark(self) -> list[object]:
        items: list[object] = []
        while self.stack and self.stack[-1] is not _MARK:
            items.append(self.stack.pop())
        if self.stack:
            self.stack.pop()
        return items[::-1]

    def _step(self, name: str, op, arg, here: int) -> int | None:  # noqa: C901 - one branch per opcode
        stack, memo = self.stack, self.memo
        if name in LITERAL_OPS:
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name == "MARK":
            stack.append(_MARK)
        elif name in PUT_OPS or name == "MEMOIZE":
            memo[arg if name in PUT_OPS else len(memo)] = stack[-1] if stack else _UNKNOWN
        elif name in GET_OPS:
            stack.append(memo.get(arg, _UNKNOWN))
        elif name == "DUP":
            stack.append(stack[-1] if stack else _UNKNOWN)
        elif name == "POP":
            self._pop()
        elif name == "POP_MARK":
            self._pop_mark()
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            items = [self._pop() for _ in range(int(name[-1]))][::-1]
            stack.append(tuple(items))
        elif name == "TUPLE":
            stack.append(tuple(self._pop_mark()))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            stack.append(self._pop_mark())
        elif name in ("APPEND", "APPENDS"):
            items = [self._pop()] if name == "APPEND" else self._pop_mark()
            if stack and isinstance(stack[-1], list):
                stack[-1].extend(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name in ("DICT", "SETITEM", "SETITEMS"):
            items = self._pop_mark() if name != "SETITEM" else [*reversed([self._pop(), self._pop()])]
            target = {} if name == "DICT" else (stack[-1] if stack else None)
            if isinstance(target, dict):
                for key, value in zip(items[::2], items[1::2], strict=False):
                    with contextlib.suppress(TypeError):  # an unhashable key (a list, a dict)
                        target[key] = value
            if name == "DICT":
                stack.append(target)
        elif name in ("GLOBAL", "INST"):
            module, _, qual = str(arg).partition(" ")
            self.imports.append((module, qual))
            found = _Global(module, qual)
            stack.append(found if name == "GLOBAL" else _Obj(found, tuple(self._pop_mark())))
        elif name == "STACK_GLOBAL":
            top, below = self._pop(), self._pop()
            if isinstance(below, str) and isinstance(top, str):
                self.imports.append((below, top))
                stack.append(_Global(below, top))
            else:
                self.problems.append("STACK_GLOBAL of a computed name")
                stack.append(_UNKNOWN)
        elif name in ("REDUCE", "NEWOBJ"):
            args, func = self._pop(), self._pop()
            if (
                isinstance(func, _Global)
                and func.full == "_codecs.encode"
                and isinstance(args, tuple)
                and len(args) == 2
                and isinstance(args[0], str)
                and args[1] in ("latin1", "latin-1")
            ):
                stack.append(args[0].encode("latin-1"))  # how protocols 0-2 write bytes
            else:
                stack.append(_Obj(func, args))
        elif name == "NEWOBJ_EX":
            self._pop()
            args = self._pop()
            stack.append(_Obj(self._pop(), args))
        elif name == "OBJ":
            items = self._pop_mark()
            stack.append(_Obj(items[0], tuple(items[1:])) if items else _UNKNOWN)
        elif name == "BUILD":
            state = self._pop()
            target = stack[-1] if stack else None
            if isinstance(target, _Obj):
                target.state = state
                if _class_of(target) in JOBLIB_WRAPPERS:
                    return self._skip_joblib_array(target, here)
        elif name.startswith("EXT"):
            self.problems.append(f"{name} extension code {arg}")
            stack.append(_UNKNOWN)
        else:  # the generic stack effect (sets, persistent ids, buffers, ...)
            before = list(op.stack_before)
            if pickletools.markobject in before:
                self._pop_mark()
                for _ in range(before.index(pickletools.markobject)):
                    self._pop()
            else:
                for _ in before:
                    self._pop()
            stack.extend(_MARK if item is pickletools.markobject else _UNKNOWN for item in op.stack_after)
        return None

    def _skip_joblib_array(self, wrapper: _Obj, here: int) -> int:
        """Where the pickle resumes after the array joblib wrote at ``here`` (``NumpyArrayWrapper.write_array``:
        a nested pickle for object arrays, else an alignment byte, padding and the raw bytes)."""
        state = wrapper.state
        if _class_of(wrapper) != "joblib.numpy_pickle.NumpyArrayWrapper" or not isinstance(state, dict):
            raise _Undecodable("joblib array wrapper without a readable state")
        dtype, shape = state.get("dtype"), state.get("shape")
        if not (
            isinstance(dtype, _Obj)
            and isinstance(dtype.args, tuple)
            and dtype.args
            and isinstance(dtype.args[0], str)
            and isinstance(shape, tuple)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        ):
            raise _Undecodable("joblib array of unknown dtype or shape")
        match = DTYPE_RE.fullmatch(dtype.args[0])
        if match is None:
            raise _Undecodable(f"joblib array of unknown dtype {dtype.args[0]!r}")
        if match.group(1) == "O":  # pickle.dump(array) into the stream
            nested = _Stream(self.data, here)
            self.imports += nested.imports
            self.problems += nested.problems
            if nested.error is not None:
                raise ValueError(f"object array pickle: {nested.error}")
            return nested.end
        itemsize = _itemsize(dtype)
        count = 1
        for n in shape:
            count *= n
        if state.get("numpy_array_alignment_bytes") is not None:
            if here >= len(self.data):
                raise _Undecodable("joblib array padding past the end of the file")
            here += 1 + self.data[here]
        return here + count * itemsize


_IDENT = rb"[A-Za-z_][\w.]{0,120}"
RAW_GLOBAL_RE = re.compile(rb"[ci](" + _IDENT + rb")\n(" + _IDENT + rb")\n")
# two strings (SHORT_BINUNICODE/SHORT_BINSTRING or BINUNICODE/BINSTRING), each maybe memoized, then STACK_GLOBAL
_STR = rb"(?:[\x8cU](.)|[XT](.)\x00\x00\x00)(" + _IDENT + rb")(?:\x94|q.|r....)?"
RAW_STACK_GLOBAL_RE = re.compile(_STR + _STR + rb"\x93", re.S)


def _raw_imports(data: bytes) -> list[tuple[str, str]]:
    """(module, name) of every byte form of a ``GLOBAL``/``INST``/``STACK_GLOBAL`` in ``data``."""
    pairs = {(m.group(1).decode(), m.group(2).decode()) for m in RAW_GLOBAL_RE.finditer(data)}
    for m in RAW_STACK_GLOBAL_RE.finditer(data):
        len1, len2 = (m.group(1) or m.group(2))[0], (m.group(4) or m.group(5))[0]
        if len1 == len(m.group(3)) and len2 == len(m.group(6)):
            pairs.add((m.group(3).decode(), m.group(6).decode()))
    return sorted(pairs)


def pickle_imports(data: bytes, label: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """([(module, name, where)], [problems]) for the pickle stream(s) in ``data``.

    Raises:
        SourceModelError: ``data`` is empty, or its first stream (or a later one that starts with
            ``PROTO``) does not decode: truncated, corrupt, not a pickle.
    """
    if not data:
        raise corrupt(label, "empty file")
    found: list[tuple[str, str, str]] = []
    problems: list[str] = []
    start, first = 0, True
    while start < len(data):
        stream = _Stream(data, start)
        if stream.error is None or first:
            found += [(m, n, "pickle opcodes") for m, n in stream.imports]
            problems += stream.problems
        if stream.error is not None:
            # the first stream must decode (up to a joblib array of unknown size); so must a later one
            # that starts like a pickle (legacy torch.save writes five, protocol 2, then raw storages)
            if stream.unsized_array:  # the real unpickler may go on where this decoder cannot follow
                problems.append(f"the rest of the stream ({stream.error})")
                break
            if first or data[start : start + 1] == b"\x80":
                raise corrupt(label, stream.error)
            # raw bytes no unpickler reads (legacy torch storages, anything after the first pickle): search them
            rest = data[start:]
            found += [(m, n, "GLOBAL found in the raw bytes") for m, n in _raw_imports(rest)]
            break
        start, first = stream.end, False
    return found, problems


def _fickling_findings(data: bytes, label: str) -> list[Finding]:
    """fickling's *likely overtly malicious* results (a second opinion); its errors are ignored,
    since the stream was already decoded by :mod:`pickletools`."""
    import contextlib

    sink = io.StringIO()  # fickling prints warnings on malformed streams: keep the worker's streams clean
    try:
        from fickling.analysis import Severity, check_safety
        from fickling.fickle import StackedPickle

        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            results = [
                r
                for pickled in StackedPickle.load(io.BytesIO(data), fail_on_decode_error=False)
                for r in check_safety(pickled).results
            ]
    except Exception:  # fickling's own limits (PERSID, joblib buffers, ...)
        return []
    return [
        Finding(
            "pickle-global", r.trigger or str(r)[:80], label, f"fickling {r.analysis_name}: {str(r)[:160]}", PICKLE_HINT
        )
        for r in results
        if r.severity >= Severity.LIKELY_OVERTLY_MALICIOUS and not _fickling_benign(r.trigger or "")
    ]


def _fickling_benign(trigger: str) -> bool:
    match = re.fullmatch(r"from (\S+) import (\S+)", trigger)
    return match is not None and check_import(match.group(1), match.group(2)) is None


def scan_pickle_bytes(data: bytes, label: str) -> list[Finding]:
    """Findings for one pickle stream (``label`` names it in the findings: a file or ``zip!entry``).

    Raises:
        SourceModelError: the stream is empty, truncated or not a pickle.
    """
    imports, problems = pickle_imports(data, label)
    findings: list[Finding] = [Finding("pickle-global", p, label, "cannot check it", PICKLE_HINT) for p in problems]
    seen: set[tuple[str, str]] = set()
    for module, name, where in imports:
        module, name = _py3_name(module, name)  # what the unpickler imports (protocols 0-2 write Python 2 names)
        if (module, name) in seen:
            continue
        seen.add((module, name))
        why = check_import(module, name)
        if why is not None:
            findings.append(
                Finding("pickle-global", f"from {module} import {name}", label, f"{where}: {why}", PICKLE_HINT)
            )
    reported = {f.name for f in findings}
    findings += [f for f in _fickling_findings(data, label) if f.name not in reported]
    return findings


MAX_DECOMPRESSED = 4 * 1024**3  # a decompression bomb stops here


def _decompressed(data: bytes) -> bytes:
    """``data``, decompressed when it starts like one of joblib's compressed files (``joblib.dump(...,
    compress=...)``: zlib, gzip, bz2, xz, lzma; joblib recognises them by the same prefixes)."""
    import bz2
    import lzma
    import zlib

    engine: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor
    if data[:1] == b"\x78":
        engine = zlib.decompressobj()
    elif data[:2] == b"\x1f\x8b":
        engine = zlib.decompressobj(wbits=31)
    elif data[:2] == b"BZ":
        engine = bz2.BZ2Decompressor()
    elif data[:5] == b"\xfd7zXZ" or data[:3] == b"]\x00\x00":
        engine = lzma.LZMADecompressor()
    else:
        return data
    out = engine.decompress(data, MAX_DECOMPRESSED)
    if len(out) >= MAX_DECOMPRESSED:
        raise SourceModelError(
            f"compressed pickle decompresses to more than {MAX_DECOMPRESSED} bytes",
            "save it uncompressed (joblib.dump(..., compress=0))",
        )
    return out


def scan_pickle_file(path: Path) -> tuple[list[str], list[Finding]]:
    """(entries checked, findings) for a raw pickle file or a zip archive (torch.save) whose
    ``*.pkl`` entries are pickles.

    Raises:
        SourceModelError: the file (or a pickle entry) is empty, truncated or corrupt.
    """
    try:
        if path.read_bytes()[:2] == b"PK":
            checked, findings = [], []
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith(PICKLE_ENTRY_SUFFIXES):
                        label = f"{path}!{name}"
                        checked.append(label)
                        findings += scan_pickle_bytes(archive.read(name), label)
            return checked, findings
        return [str(path)], scan_pickle_bytes(_decompressed(path.read_bytes()), str(path))
    except SourceModelError:
        raise
    except Exception as exc:  # zipfile/zlib/OSError on a damaged archive
        raise corrupt(str(path), f"{type(exc).__name__}: {exc}") from exc
