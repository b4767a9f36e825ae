"""Landlock confinement: each test runs a Python child that confines itself and reports as JSON.

Confinement is irreversible, so it never happens in the pytest process itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from optkit.sandbox.landlock import Confinement, abi_version, default_paths
from optkit.sandbox.read_paths import model_read_paths

SRC = Path(__file__).resolve().parents[3] / "src"

needs_landlock = pytest.mark.skipif(
    abi_version() == 0,
    reason="Landlock is unavailable on this system "
    "(not Linux, kernel < 5.13, landlock not in the LSM list, or seccomp)",
)

PRELUDE = """
import json, os, socket, subprocess, sys
from pathlib import Path
from optkit.sandbox.landlock import confine, default_paths
out = {}
def attempt(name, fn):
    try:
        out[name] = ["ok", fn()]
    except OSError as exc:
        out[name] = [type(exc).__name__, exc.errno]
"""


def run_child(code: str, scratch: Path, **args: object) -> dict:
    """Run ``code`` in a fresh Python (HOME=TMPDIR=scratch, ``args`` in ``args``); return the JSON it prints last."""
    scratch.mkdir(exist_ok=True)
    args["scratch"] = scratch
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "OPTKIT_ARGS": json.dumps(args, default=str),
    }
    script = (
        PRELUDE
        + "args = json.loads(os.environ['OPTKIT_ARGS'])\n"
        + textwrap.dedent(code)
        + "\nprint(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CONFINE = """
ro, rw = default_paths([Path(p) for p in args.get("models", [])], Path(args["scratch"]))
out["confinement"] = confine(ro + [Path(p) for p in args.get("ro", [])], rw,
                             block_network=args.get("block_network", True)).to_dict()
"""


@needs_landlock
def test_filesystem_rules_hold_for_the_process_and_its_children(tmp_path):
    scratch, outside, ro = tmp_path / "scratch", tmp_path / "outside", tmp_path / "ro"
    outside.mkdir()
    ro.mkdir()
    (outside / "secret.txt").write_text("secret")
    (ro / "data.txt").write_text("data")
    home_probe = Path.home() / f".optkit-sandbox-probe-{uuid.uuid4().hex}"
    code = (
        CONFINE
        + """
attempt("scratch_write", lambda: Path(args["scratch"], "a.txt").write_text("x"))
attempt("scratch_read", lambda: Path(args["scratch"], "a.txt").read_text())
attempt("outside_create", lambda: Path(args["outside"], "new.txt").write_text("x"))
attempt("outside_overwrite", lambda: Path(args["outside"], "secret.txt").write_text("x"))
attempt("outside_read", lambda: Path(args["outside"], "secret.txt").read_text())
attempt("home_create", lambda: Path(args["home_probe"]).write_text("x"))
attempt("ro_read", lambda: Path(args["ro"][0], "data.txt").read_text())
attempt("ro_write", lambda: Path(args["ro"][0], "data.txt").write_text("x"))
attempt("ro_delete", lambda: Path(args["ro"][0], "data.txt").unlink())
attempt("ro_create", lambda: Path(args["ro"][0], "new.txt").write_text("x"))
attempt("dev_null", lambda: Path("/dev/null").write_text("x"))
grandchild = subprocess.run(["sh", "-c", f"echo x > {args['outside']}/grandchild.txt"], capture_output=True)
out["grandchild_rc"] = grandchild.returncode
out["grandchild_scratch_rc"] = subprocess.run(["sh", "-c", f"echo x > {args['scratch']}/g.txt"]).returncode
"""
    )
    try:
        got = run_child(code, scratch, outside=outside, ro=[ro], home_probe=home_probe)
        assert not home_probe.exists()
    finally:
        home_probe.unlink(missing_ok=True)
    assert got["confinement"]["filesystem"] is True
    assert str(ro) in got["confinement"]["read_only"]
    assert got["scratch_write"][0] == "ok" and got["scratch_read"] == ["ok", "x"]
    for name in (
        "outside_create",
        "outside_overwrite",
        "outside_read",
        "home_create",
        "ro_write",
        "ro_delete",
        "ro_create",
    ):
        assert got[name][0] == "PermissionError", (name, got[name])
    assert not (outside / "new.txt").exists() and (outside / "secret.txt").read_text() == "secret"
    assert got["ro_read"] == ["ok", "data"] and (ro / "data.txt").read_text() == "data"
    assert not (ro / "new.txt").exists()
    assert got["dev_null"][0] == "ok"
    assert got["grandchild_rc"] != 0 and not (outside / "grandchild.txt").exists()
    assert got["grandchild_scratch_rc"] == 0 and (scratch / "g.txt").read_text() == "x\n"


@needs_landlock
def test_missing_paths_are_skipped_and_recorded_as_such(tmp_path):
    missing = tmp_path / "does-not-exist"
    got = run_child(CONFINE, tmp_path / "scratch", ro=[missing])
    assert str(missing) not in got["confinement"]["read_only"]
    assert str((tmp_path / "scratch").resolve()) in got["confinement"]["writable"]


@pytest.fixture()
def tcp_listener():
    """A loopback TCP listener opened by the test process; yields its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


NETWORK = (
    """
def tcp_connect():
    with socket.create_connection(("127.0.0.1", args["port"]), timeout=10):
        return "connected"
def udp_send():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        return udp.sendto(b"x", ("127.0.0.1", args["udp_port"]))
attempt("tcp_before", tcp_connect)
attempt("udp_before", udp_send)
"""
    + CONFINE
    + """
attempt("tcp_after", tcp_connect)
attempt("udp_after", udp_send)
attempt("parent_environ", lambda: len(Path(f"/proc/{os.getppid()}/environ").read_bytes()))
attempt("signal_parent", lambda: os.kill(os.getppid(), 0))
"""
)


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return udp.getsockname()[1]


@needs_landlock
def test_network_is_blocked_and_the_record_says_how(tmp_path, tcp_listener):
    got = run_child(NETWORK, tmp_path / "scratch", port=tcp_listener, udp_port=_udp_port())
    conf = got["confinement"]
    assert got["tcp_before"] == ["ok", "connected"] and got["udp_before"][0] == "ok"  # the controls
    assert got["tcp_after"][0] != "ok"
    assert conf["network"] in ("landlock-tcp+netns", "landlock-tcp", "netns")
    if "netns" in conf["network"] or conf["sockets"] == "blocked":
        assert got["udp_after"][0] != "ok"
    else:
        assert conf["network"] == "landlock-tcp" and got["udp_after"][0] == "ok"
    assert got["parent_environ"][0] == "PermissionError"
    if abi_version() >= 6:
        assert conf["scopes"] == ["abstract-unix-socket", "signal"]
        assert got["signal_parent"][0] == "PermissionError"


@needs_landlock
def test_landlock_alone_blocks_tcp_but_not_udp(tmp_path, tcp_listener):
    if abi_version() < 4:
        pytest.skip("Landlock TCP rules need ABI 4 (Linux 6.7)")
    abstract = f"\0optkit-test-{uuid.uuid4().hex}"  # abstract sockets are per netns: keep the host's netns
    code = (
        "import optkit.sandbox.network as network\nnetwork.enter_new_netns = lambda: False\n"
        "import optkit.sandbox.seccomp as seccomp\nseccomp._bindings = lambda: None\n"  # no socket filter
        + NETWORK
        + """
def unix_connect():
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(args["abstract"])
        return "connected"
attempt("unix_after", unix_connect)
"""
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(abstract)
        server.listen(8)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
            control.connect(abstract)  # the listener works unconfined
        got = run_child(code, tmp_path / "scratch", port=tcp_listener, udp_port=_udp_port(), abstract=abstract)
    assert got["confinement"]["network"] == "landlock-tcp"
    assert got["confinement"]["sockets"] == "not-blocked"  # and confine() still worked without it
    if abi_version() >= 6:
        assert got["unix_after"][0] == "PermissionError"
    assert got["tcp_before"] == ["ok", "connected"]
    assert got["tcp_after"] == ["PermissionError", 13]  # EACCES from Landlock, not a refused connection
    assert got["udp_after"][0] == "ok"


@needs_landlock
def test_block_network_false_leaves_the_network_alone(tmp_path, tcp_listener):
    got = run_child(NETWORK, tmp_path / "scratch", port=tcp_listener, udp_port=_udp_port(), block_network=False)
    assert got["confinement"]["network"] == "none" and got["confinement"]["sockets"] == "not-blocked"
    assert got["tcp_after"] == ["ok", "connected"]


@needs_landlock
def test_numpy_and_onnxruntime_work_with_default_paths(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_dir / "m.onnx")
    code = (
        CONFINE
        + """
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(args["models"][0], providers=["CPUExecutionProvider"])
out["y"] = session.run(None, {"x": np.array([-1.0, 2.0], dtype=np.float32)})[0].tolist()
"""
    )
    got = run_child(code, tmp_path / "scratch", models=model_read_paths(model_dir / "m.onnx"))
    assert got["y"] == [0.0, 2.0]
    assert str((model_dir / "m.onnx").resolve()) in got["confinement"]["read_only"]
    assert str(model_dir.resolve()) not in got["confinement"]["read_only"]  # the file, not its folder


@needs_landlock
def test_a_process_with_threads_is_refused(tmp_path):
    code = """
import threading
from optkit.errors import SandboxUnavailable
stop = threading.Event()
threading.Thread(target=stop.wait).start()
try:
    confine([], [Path(args["scratch"])])
    out["result"] = "confined"
except SandboxUnavailable as exc:
    out["result"] = exc.one_line()
stop.set()
attempt("outside_write", lambda: Path(args["outside"]).write_text("x"))
"""
    got = run_child(code, tmp_path / "scratch", outside=tmp_path / "o.txt")
    assert got["result"].startswith("sandbox unavailable: cannot confine a process with 2 threads")
    assert got["outside_write"][0] == "ok"  # nothing was half-applied


def test_abi_version_is_a_non_negative_int():
    assert isinstance(abi_version(), int) and abi_version() >= 0


def test_default_paths_leave_out_home_and_tmp(tmp_path):
    model = tmp_path / "m" / "model.pdmodel"
    model.parent.mkdir()
    model.write_bytes(b"")
    read, write = default_paths([model], tmp_path / "scratch")
    assert model.resolve() in read and model.parent.resolve() not in read  # a file grants only itself
    assert Path.home().resolve() not in read and Path("/tmp") not in read and Path("/") not in read
    assert not any(p.name.isdigit() and p.parent == Path("/proc") for p in read)
    assert write[0] == (tmp_path / "scratch").resolve() and Path("/dev/null") in write


def test_confinement_to_dict_is_json_serialisable():
    conf = Confinement(
        abi=7,
        filesystem=True,
        network="landlock-tcp+netns",
        scopes=("abstract-unix-socket", "signal"),
        read_only=("/usr",),
        writable=("/scratch",),
    )
    assert json.loads(json.dumps(conf.to_dict())) == {
        "abi": 7,
        "filesystem": True,
        "network": "landlock-tcp+netns",
        "scopes": ["abstract-unix-socket", "signal"],
        "read_only": ["/usr"],
        "writable": ["/scratch"],
        "private_shm": False,
        "sockets": "not-blocked",
    }
    blocked = Confinement(
        abi=7,
        filesystem=True,
        network="netns",
        scopes=(),
        read_only=(),
        writable=(),
        private_shm=True,
        sockets="blocked",
    )
    assert json.loads(json.dumps(blocked.to_dict()))["sockets"] == "blocked"


def test_die_with_parent_kills_the_child_when_its_parent_exits(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    # The grandchild inherits our stderr pipe, so run() only returns once the grandchild is gone too;
    # without die_with_parent it would sleep on past the timeout and the test fails.
    grandchild = (
        "import sys, time\nfrom optkit.sandbox.landlock import die_with_parent\n"
        "die_with_parent()\nprint('armed', flush=True)\ntime.sleep(600)\n"
    )
    middle = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdout=subprocess.PIPE, text=True)\n"
        "assert child.stdout.readline() == 'armed\\n'\nprint(child.pid)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", middle], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) > 0


@needs_landlock
def test_what_the_worker_writes_to_dev_shm_never_reaches_the_host(tmp_path):
    """/dev/shm stays writable (multiprocessing needs it) but is a private tmpfs where possible."""
    name = f"optkit-test-{uuid.uuid4().hex}"
    out = run_child(
        CONFINE
        + """
attempt("shm_write", lambda: Path("/dev/shm", args["name"]).write_text("x"))
""",
        tmp_path / "scratch",
        name=name,
    )
    leaked = Path("/dev/shm", name)
    try:
        assert out["shm_write"][0] == "ok"
        if out["confinement"]["private_shm"]:
            assert not leaked.exists(), "the worker's /dev/shm file reached the host"
        else:
            assert os.geteuid() != 0, "as root the private /dev/shm must be possible"
    finally:
        leaked.unlink(missing_ok=True)
