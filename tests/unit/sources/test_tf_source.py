"""TensorFlow / Keras: sources, tf2onnx export through a SavedModel, static int8, bad inputs.

TensorFlow is imported in this test process; PaddlePaddle never is (importing both in one process
crashes), so Paddle's tests run the CLI in child processes.
"""

from __future__ import annotations

import numpy as np
import pytest

import optkit
from optkit.errors import SourceModelError, UnsafeModelError
from tests_support import FAST

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 8×8 images whose class (0-2) is the bright band of rows: an easy, confident task."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    images = 0.2 * rng.random((n, 8, 8, 1), dtype=np.float32)
    for i, label in enumerate(labels):
        images[i, 3 * label : 3 * label + 2] += 0.8
    return images, labels


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    train, labels = _images(300, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(train, labels, epochs=30, verbose=0)  # confident predictions: argmax is stable under int8
    model.save(folder / "m.keras")
    model.export(str(folder / "saved"), verbose=False)
    np.savez(folder / "test.npz", X=_images(40, seed=1)[0])
    np.savez(folder / "calib.npz", X=_images(40, seed=2)[0])
    return folder


def test_keras_cnn_int8_with_calibration(cnn, tmp_path):
    overrides = {**FAST, "passes.1.calibration_data": str(cnn / "calib.npz")}
    result = optkit.convert(
        cnn / "m.keras", "cnn-int8", tmp_path / "o", data=str(cnn / "test.npz"), overrides=overrides
    )
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    assert result.source.framework == "tensorflow" and result.source.kind == "keras"
    steps = {s.name: s for s in result.steps}
    assert steps["export"].details["exporter"] == "tf2onnx (SavedModel)"
    assert steps["quantize-static"].details["calibration"] == str(cnn / "calib.npz")
    assert steps["quantize-static"].details["quantize_linear_nodes"] > 0
    assert result.accuracy.metrics["label_agreement"] >= 0.99


def test_static_quantization_without_calibration_warns(cnn, tmp_path):
    result = optkit.convert(cnn / "m.keras", "cnn-int8", tmp_path / "o", data=str(cnn / "test.npz"), overrides=FAST)
    assert any("calibrated on the validation data" in w for w in result.warnings)


def test_savedmodel_source(cnn, tmp_path):
    overrides = {**FAST, "passes": [{"type": "simplify"}]}
    result = optkit.convert(cnn / "saved", "cnn-int8", tmp_path / "o", data=str(cnn / "test.npz"), overrides=overrides)
    assert result.approved and result.source.kind == "savedmodel"
    assert result.accuracy.metrics["max_abs_error"] < 1e-5


def test_corrupt_savedmodel(cnn, tmp_path):
    import shutil

    broken = tmp_path / "saved"
    shutil.copytree(cnn / "saved", broken)
    (broken / "saved_model.pb").write_bytes((broken / "saved_model.pb").read_bytes()[:100])
    with pytest.raises(SourceModelError, match="corrupt"):
        optkit.convert(broken, "cnn-int8", tmp_path / "o", overrides=FAST)


def test_corrupt_keras_file(tmp_path):
    bad = tmp_path / "m.keras"
    bad.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(SourceModelError, match="Keras (model|file).*corrupt"):
        optkit.convert(bad, "cnn-int8", tmp_path / "o", overrides=FAST)
    assert not (tmp_path / "o").exists()


def test_lambda_layer_is_refused(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(UnsafeModelError, match="Lambda"):  # the scan refuses it before Keras loads it
        optkit.convert(tmp_path / "lambda.keras", "cnn-int8", tmp_path / "o", overrides=FAST)


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """A Keras 3 model with two named inputs whose names sort the other way round from the model's
    order (``pixels`` (N, 8, 8, 1) first, ``meta`` (N, 4) second), its data and its SavedModel twin."""
    folder = tmp_path_factory.mktemp("keras2")
    keras.utils.set_random_seed(0)
    pixels, meta = keras.Input((8, 8, 1), name="pixels"), keras.Input((4,), name="meta")
    x = keras.layers.Flatten()(keras.layers.Conv2D(2, 3)(pixels))
    x = keras.layers.Concatenate()([x, keras.layers.Dense(3)(meta)])
    model = keras.Model([pixels, meta], keras.layers.Dense(3)(x))
    model.save(folder / "two.keras")
    rng = np.random.default_rng(0)
    np.savez(
        folder / "data.npz",
        pixels=rng.random((12, 8, 8, 1), dtype=np.float32),
        meta=rng.random((12, 4), dtype=np.float32),
    )
    return folder


def test_keras_two_named_inputs_are_fed_and_exported_by_name(two_inputs, tmp_path):
    result = optkit.convert(
        two_inputs / "two.keras", "fp32", tmp_path / "o", data=str(two_inputs / "data.npz"), overrides=FAST
    )
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    import onnx

    graph = onnx.load(str(tmp_path / "o" / "model.onnx")).graph
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in graph.input}
    assert ranks == {"pixels": 4, "meta": 2}  # each name on its own tensor (positional renaming swapped them)
    assert result.accuracy.metrics["max_abs_error"] < 1e-5
