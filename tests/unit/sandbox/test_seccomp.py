"""The seccomp socket filter of confine(): no socket of any family, socketpair streams still work.

Each confined test runs in a Python child (see test_landlock.run_child): confinement is irreversible.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from test_landlock import CONFINE, needs_landlock, run_child

from optkit.sandbox.seccomp import SocketFilter

needs_seccomp = pytest.mark.skipif(not SocketFilter().ready, reason="libseccomp/pyseccomp unavailable")


class UnixServer:
    """A pathname unix stream socket opened by the (unconfined) test; counts the connections it accepts."""

    def __init__(self, path) -> None:
        self.path, self.accepted = str(path), 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture()
def unix_server():
    """A listener under a short folder of /tmp (``sun_path`` holds 108 bytes; pytest's tmp_path can be longer)."""
    folder = Path(tempfile.mkdtemp(prefix="optkit-sock-"))
    server = UnixServer(folder / "s.sock")
    yield server
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


SOCKETS = (
    """
import errno, multiprocessing
def unix_connect():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(args["unix"])
        return "connected"
def family(name, kind=socket.SOCK_STREAM):
    def make():
        with socket.socket(getattr(socket, name), kind):
            return "created"
    return make
def pair(kind):
    def make():
        a, b = socket.socketpair(socket.AF_UNIX, kind)
        with a, b:
            a.send(b"x")
            return b.recv(1).decode()
    return make
def pipe():
    a, b = multiprocessing.Pipe()
    a.send({"x": 1})
    return b.recv()
def dgram_to(path):
    def send():
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b:
            return a.sendto(b"x", path)
    return send
attempt("unix_before", unix_connect)
"""
    + CONFINE
    + """
attempt("unix_after", unix_connect)
attempt("inet", family("AF_INET"))
attempt("inet6", family("AF_INET6"))
attempt("udp", family("AF_INET", socket.SOCK_DGRAM))
attempt("unix_dgram", family("AF_UNIX", socket.SOCK_DGRAM))
attempt("netlink", family("AF_NETLINK", socket.SOCK_RAW))
attempt("packet", family("AF_PACKET", socket.SOCK_RAW))
attempt("vsock", family("AF_VSOCK"))
attempt("pair_stream", pair(socket.SOCK_STREAM))
attempt("pair_seqpacket", pair(socket.SOCK_SEQPACKET))
attempt("pair_dgram", pair(socket.SOCK_DGRAM))
attempt("pipe", pipe)
attempt("pipe_simplex", lambda: multiprocessing.Pipe(duplex=False) and "ok")
def io_uring_setup():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    fd = libc.syscall(ctypes.c_long(425), ctypes.c_uint(4), params)  # __NR_io_uring_setup (x86_64, aarch64)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")
    os.close(fd)
    return "created"
attempt("io_uring", io_uring_setup)
grandchild = subprocess.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_UNIX).connect("
                             + repr(args["unix"]) + ")"], capture_output=True, text=True)
out["grandchild"] = grandchild.stderr.strip().splitlines()[-1:] if grandchild.returncode else "connected"
"""
)


@needs_landlock
@needs_seccomp
def test_no_socket_of_any_family_but_socketpair_streams_and_pipes_work(tmp_path, unix_server):
    got = run_child(SOCKETS, tmp_path / "scratch", unix=unix_server.path)
    assert got["confinement"]["sockets"] == "blocked"
    assert got["unix_before"] == ["ok", "connected"]  # the control: reachable unconfined
    assert got["unix_after"] == ["PermissionError", 13]
    for name in ("inet", "inet6", "udp", "unix_dgram", "netlink", "packet", "vsock", "pair_dgram"):
        assert got[name][0] == "PermissionError" and got[name][1] in (1, 13), (name, got[name])
    assert got["pair_stream"] == ["ok", "x"] and got["pair_seqpacket"] == ["ok", "x"]
    assert got["pipe"] == ["ok", {"x": 1}] and got["pipe_simplex"] == ["ok", "ok"]
    assert got["grandchild"] != "connected" and "PermissionError" in got["grandchild"][0]
    assert got["io_uring"] == ["OSError", 38]  # ENOSYS: io_uring could open sockets without socket(2)
    deadline = time.monotonic() + 5
    while unix_server.accepted < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert unix_server.accepted == 1  # the control only: the server never saw a confined connection


@needs_landlock
def test_confine_works_without_libseccomp_and_says_sockets_are_not_blocked(tmp_path, unix_server):
    code = (
        "import optkit.sandbox.seccomp as seccomp\nseccomp._bindings = lambda: None\n"
        + CONFINE
        + """
def unix_connect():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(args["unix"])
        return "connected"
attempt("unix_after", unix_connect)
"""
    )
    got = run_child(code, tmp_path / "scratch", unix=unix_server.path)
    assert got["confinement"]["sockets"] == "not-blocked"
    assert got["confinement"]["filesystem"] is True
    assert got["unix_after"] == ["ok", "connected"]  # the gap the record admits (Landlock ABI <= 7)


@needs_landlock
@needs_seccomp
def test_numpy_onnxruntime_and_a_process_pool_work_under_the_filter(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    code = (
        CONFINE
        + """
import multiprocessing
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(args["models"][0], providers=["CPUExecutionProvider"])
out["y"] = session.run(None, {"x": np.array([-1.0, 2.0], dtype=np.float32)})[0].tolist()
with multiprocessing.get_context("fork").Pool(2) as pool:
    out["pool"] = pool.map(abs, [-1, -2])
"""
    )
    got = run_child(code, tmp_path / "scratch", models=[model])
    assert got["confinement"]["sockets"] == "blocked"
    assert got["y"] == [0.0, 2.0] and got["pool"] == [1, 2]


def test_the_filter_is_only_built_not_loaded_in_this_process():
    flt = SocketFilter()
    assert flt.ready or flt.error
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM):  # pytest's own process is not filtered
        pass
