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
    code = (f"import sys; sys.path[:0] = [{str(HERE)!r}]; import hostile_models as h; "
            f"print(h.{builder}(__import__('pathlib').Path({str(folder)!r})))")
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
    os.environ["FLAGS_enable_pir_api"] = "1" if pir else "0"
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
    save = {"#": "1.save_combine", "I": list(ops[fetch]["I"]), "O": [],
            "A": [{"AT": {"#": "0.a_str", "D": str(folder / "written_by_model.bin")}, "N": "file_path"},
                  {"AT": {"#": "0.a_bool", "D": True}, "N": "overwrite"}], "OA": []}
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
