"""Hostile model builders (issue 9) and their benign counterparts, each writing into a given folder.

TensorFlow and Paddle builders import their framework: call them in a child process
(:func:`build_in_child`), since importing TensorFlow and then Paddle in one process crashes.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build_in_child(builder: str, folder: Path) -> Path:
    """Run ``tests.hostile_models.<builder>(folder)`` in a fresh interpreter; return its path.

    Raises:
        RuntimeError: the child failed (its stderr tail in the message).
    """
    code = (
        f"import sys; sys.path[:0] = [{str(HERE)!r}]; import hostile_models as h; "
        f"print(h.{builder}(__import__('pathlib').Path({str(folder)!r})))"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{builder} failed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


# --- TensorFlow (child process) ---------------------------------------------------------------


def savedmodel_writing_file(folder: Path) -> Path:
    """A SavedModel whose serving signature calls ``tf.io.write_file`` (``WriteFile`` op) on every call;
    the file it writes is ``folder/written_by_model.txt``."""
    import tensorflow as tf

    target = str(folder / "written_by_model.txt")

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            tf.io.write_file(target, tf.strings.as_string(tf.reduce_sum(x)))
            return {"y": x * 2.0}

    module = Writer()
    out = folder / "hostile_savedmodel"
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    return out


def keras_export(folder: Path) -> Path:
    """A benign Keras 3 model exported as a SavedModel (``model.export``) plus the same model as
    ``model.keras``; returns the SavedModel folder."""
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="relu")(inputs))
    model.save(folder / "model.keras")
    out = folder / "keras_savedmodel"
    model.export(str(out), verbose=False)
    return out


def keras_with_lambda(folder: Path) -> Path:
    """A ``.keras`` file holding a ``Lambda`` layer (Python code)."""
    import keras

    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    out = folder / "lambda.keras"
    model.save(out)
    return out


# --- Paddle (child process) -------------------------------------------------------------------


def _linear(folder: Path, name: str, pir: bool) -> Path:
    os.environ["FLAGS_enable_pir_api"] = "1" if pir else "0"  # noqa: SIM112 (Paddle's own spelling of the flag)
    import paddle

    paddle.seed(0)
    layer = paddle.nn.Linear(3, 2)
    prefix = folder / name
    paddle.jit.save(layer, str(prefix), input_spec=[paddle.static.InputSpec([None, 3], "float32", "x")])
    return prefix.with_suffix(".json" if pir else ".pdmodel")


def paddle_pdmodel(folder: Path) -> Path:
    """A benign legacy ``.pdmodel`` (``paddle.jit.save`` with ``FLAGS_enable_pir_api=0``)."""
    return _linear(folder, "benign", pir=False)


def paddle_pdmodel_with_save(folder: Path) -> Path:
    """A legacy ``.pdmodel`` whose block 0 ends with a ``save`` op writing the output tensor to
    ``folder/written_by_model.bin`` (appended to the ``ProgramDesc`` with Paddle's framework_pb2,
    as ``paddle.static.save``'s programs hold it)."""
    path = _linear(folder, "hostile", pir=False)  # first: the PIR flag must be set before paddle imports
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(path.read_bytes())
    block = program.blocks[0]
    fetch = next(op for op in block.ops if op.type == "fetch")
    op = block.ops.add()
    op.type = "save"
    slot = op.inputs.add()
    slot.parameter, slot.arguments[:] = "X", list(fetch.inputs[0].arguments)
    for name, value in (("file_path", str(folder / "written_by_model.bin")),):
        attr = op.attrs.add()
        attr.name, attr.type, attr.s = name, framework_pb2.AttrType.STRING, value
    attr = op.attrs.add()
    attr.name, attr.type, attr.b = "overwrite", framework_pb2.AttrType.BOOLEAN, True
    path.write_bytes(program.SerializeToString())
    return path


def paddle_pir(folder: Path) -> Path:
    """A benign PIR ``.json`` program (``paddle.jit.save``, Paddle 3 default)."""
    return _linear(folder, "benign", pir=True)


def paddle_pir_with_save(folder: Path) -> Path:
    """A PIR ``.json`` program with a ``pd_op.save_combine`` op (``"1.save_combine"``) inserted before
    its fetch, taking the output value and a ``file_path`` attribute."""
    path = _linear(folder, "hostile", pir=True)
    program = json.loads(path.read_text())
    ops = program["program"]["regions"][0]["blocks"][0]["ops"]
    fetch = next(i for i, op in enumerate(ops) if op["#"].endswith(".fetch"))
    save = {
        "#": "1.save_combine",
        "I": list(ops[fetch]["I"]),
        "O": [],
        "A": [
            {"AT": {"#": "0.a_str", "D": str(folder / "written_by_model.bin")}, "N": "file_path"},
            {"AT": {"#": "0.a_bool", "D": True}, "N": "overwrite"},
        ],
        "OA": [],
    }
    ops.insert(fetch, save)
    path.write_text(json.dumps(program))
    return path


# --- scikit-learn, pickles, Hugging Face folders (any process) --------------------------------


def skops_dump_svmlight(folder: Path) -> Path:
    """A ``.skops`` pipeline whose FunctionTransformer calls ``sklearn.datasets.dump_svmlight_file``."""
    import skops.io as sio
    from sklearn.datasets import dump_svmlight_file
    from sklearn.preprocessing import FunctionTransformer

    out = folder / "dump_svmlight.skops"
    sio.dump(FunctionTransformer(func=dump_svmlight_file, kw_args={"f": str(folder / "written.svm")}), out)
    return out


def skops_benign(folder: Path) -> Path:
    """A ``.skops`` pipeline: FunctionTransformer(numpy.log1p) → RandomForest (needs
    ``sklearn.tree._tree.Tree``, a scikit-learn class off skops' default list)."""
    import numpy as np
    import skops.io as sio
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x, y = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(np.log1p), RandomForestClassifier(3, random_state=0)).fit(x, y)
    out = folder / "benign.skops"
    sio.dump(model, out)
    return out


class _System:
    """Unpickles to ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def pickle_os_system(folder: Path) -> Path:
    """A pickle that runs ``os.system("touch folder/pwned")`` when loaded."""
    out = folder / "os_system.pkl"
    out.write_bytes(pickle.dumps(_System(f"touch {folder / 'pwned'}"), protocol=4))
    return out


def joblib_os_system(folder: Path) -> Path:
    """A joblib file whose ``os.system`` call comes after a numpy array buffer (where fickling's
    opcode analysis stops)."""
    import joblib
    import numpy as np

    out = folder / "after_array.joblib"
    joblib.dump([np.arange(1000.0), _System(f"touch {folder / 'pwned'}")], out)
    return out


def joblib_benign(folder: Path) -> Path:
    """A fitted scikit-learn pipeline saved with ``joblib.dump``."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    out = folder / "benign.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y), out)
    return out


def _hf_folder(folder: Path, name: str, config: dict) -> Path:
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, **config}))
    return out


def hf_auto_map(folder: Path) -> Path:
    """A HF folder whose config.json maps AutoModel to the folder's own ``modeling_evil.MyModel``."""
    return _hf_folder(folder, "hf_auto_map", {"auto_map": {"AutoModel": "modeling_evil.MyModel"}})


def hf_custom_py(folder: Path) -> Path:
    """A HF folder with no ``auto_map`` but a ``modeling_evil.py`` file."""
    out = _hf_folder(folder, "hf_custom_py", {})
    (out / "modeling_evil.py").write_text("import os\nos.system('touch pwned')\n")
    return out


def hf_benign(folder: Path) -> Path:
    """A HF folder with only a config.json and tokenizer_config.json (no custom code)."""
    out = _hf_folder(folder, "hf_benign", {})
    (out / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 128}))
    return out


# --- pickle gadgets outside any deny-list (issue: the scan must allow-list, not deny-list) -----


class _Reduce:
    """Unpickles to ``func(*args)``."""

    def __init__(self, func, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch_code(folder: Path) -> str:
    return f"open({str(folder / 'pwned')!r}, 'w').close()"


def _logistic_with(folder: Path, name: str, gadget: object) -> Path:
    """A fitted LogisticRegression with an extra attribute holding ``gadget``, saved with joblib."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    model.extra_ = gadget
    out = folder / f"{name}.joblib"
    joblib.dump(model, out)
    return out


def joblib_timeit(folder: Path) -> Path:
    """``timeit.timeit('pass', CODE)`` (runs CODE as its setup) in a LogisticRegression attribute."""
    import timeit

    return _logistic_with(folder, "timeit", _Reduce(timeit.timeit, ("pass", _touch_code(folder))))


def joblib_runstring(folder: Path) -> Path:
    """``numpy.testing._private.utils.runstring(CODE, {})`` (an ``exec``) in a LogisticRegression attribute."""
    from numpy.testing._private.utils import runstring

    return _logistic_with(folder, "runstring", _Reduce(runstring, (_touch_code(folder), {})))


def pickle_popen_class(folder: Path) -> Path:
    """A *class* gadget: ``subprocess.Popen(["touch", folder/pwned])``."""
    out = folder / "popen.pkl"
    out.write_bytes(pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(folder / "pwned")],)), protocol=2))
    return out


def pickle_partial_os_system(folder: Path) -> Path:
    """``functools.partial(os.system, "touch folder/pwned")()``."""
    import functools

    call = functools.partial(os.system, f"touch {folder / 'pwned'}")
    out = folder / "partial.pkl"
    out.write_bytes(pickle.dumps(_Reduce(call, ()), protocol=4))
    return out


_TINY_NET: type | None = None


def __getattr__(name: str):
    """``hostile_models.TinyNet`` (a torch.nn.Module subclass, made on first use so that importing
    this module does not import torch): what unpickling ``torch_custom_module`` looks up."""
    if name == "TinyNet":
        return _tiny_net_class()
    raise AttributeError(name)


def _tiny_net_class() -> type:
    global _TINY_NET
    if _TINY_NET is None:
        import torch

        class TinyNet(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = torch.nn.Linear(4, 2)

            def forward(self, x):
                return torch.relu(self.fc(x))

        TinyNet.__module__, TinyNet.__qualname__ = __name__, "TinyNet"
        _TINY_NET = TinyNet
    return _TINY_NET


def torch_custom_module(folder: Path) -> Path:
    """``torch.save`` of a user's own ``nn.Module`` subclass (``hostile_models.TinyNet``): benign, and
    its class comes from a module outside the trusted packages."""
    import torch

    out = folder / "custom_net.pt"
    torch.save(_tiny_net_class()(), out)
    return out


def torchscript_truncated(folder: Path) -> Path:
    """A TorchScript archive cut to half its size."""
    import torch

    out = folder / "truncated.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.ones(1, 2)), out)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    return out


def torch_save_truncated(folder: Path) -> Path:
    """A legacy (non-zip) ``torch.save`` of a module, cut inside its pickle."""
    import torch

    out = folder / "truncated_legacy.pt"
    torch.save(torch.nn.Linear(2, 2), out, _use_new_zipfile_serialization=False)
    out.write_bytes(out.read_bytes()[:200])
    return out


def empty_pt(folder: Path) -> Path:
    """An empty ``.pt`` file."""
    out = folder / "empty.pt"
    out.write_bytes(b"")
    return out


def corrupt_pt2(folder: Path) -> Path:
    """A ``.pt2`` that is neither a zip nor a pickle (random bytes)."""
    out = folder / "corrupt.pt2"
    out.write_bytes(bytes(range(7, 256)) * 4)
    return out
