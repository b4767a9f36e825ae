"""The scikit-learn ecosystem through ``optkit convert``: LightGBM and XGBoost (onnxmltools'
converters, ``--trust-skops-type``), string-input pipelines (TF-IDF, CountVectorizer, OneHotEncoder on
strings), outlier detectors and clusterers; every refusal is exit 2 with a one-line message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import optkit
from optkit.cli.app import app
from optkit.errors import DataError, SourceModelError, UnsafeModelError
from optkit.scan.skops_types import consented, trusted_skops_types
from optkit.sources import sklearn_source
from tests_support import FAST

sklearn = pytest.importorskip("sklearn")
sio = pytest.importorskip("skops.io")

runner = CliRunner()
FAST_SETS = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
TEXTS = [
    "The cat sat on the mat",
    "dogs bark loudly at night",
    "a cat and a dog",
    "the dog sat down",
    "birds sing at dawn",
    "cats purr softly",
    "loud dogs and quiet cats",
    "the bird flew away",
]
TOPICS = [0, 1, 0, 1, 2, 0, 1, 2]


def _dump(model, path):
    sio.dump(model, path)
    return path


def _cli(*args: str):
    return runner.invoke(app, ["convert", *map(str, args), *FAST_SETS])


def _gates(out) -> dict[str, str]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {g["metric"]: g["status"] for g in manifest["gates"] if g["kind"] == "accuracy"}


@pytest.fixture(scope="module")
def tabular(tmp_path_factory):
    """Breast cancer (binary, 30 features) and diabetes (regression) data as .npz, held-out halves."""
    from sklearn.datasets import load_breast_cancer, load_diabetes

    folder = tmp_path_factory.mktemp("eco")
    x, y = load_breast_cancer(return_X_y=True)
    xd, yd = load_diabetes(return_X_y=True)
    np.savez(folder / "bc.npz", X=x[1::2], y=y[1::2])
    np.savez(folder / "diabetes.npz", X=xd[1::2])
    return {"folder": folder, "x": x[::2], "y": y[::2], "xd": xd[::2], "yd": yd[::2]}


# ----------------------------------------------------------------------------- boosted trees


def test_lightgbm_classifier_converts_with_consent(tabular, tmp_path):
    lightgbm = pytest.importorskip("lightgbm")
    model = lightgbm.LGBMClassifier(n_estimators=20, max_depth=3, verbose=-1).fit(tabular["x"], tabular["y"])
    path = _dump(model, tmp_path / "lgbm.skops")
    out = tmp_path / "out"
    data = tabular["folder"] / "bc.npz"
    result = _cli(path, "-r", "tabular-fp32", "-o", out, "--data", data, "--trust-skops-type", "lightgbm")
    assert result.exit_code == 0, result.output
    assert _gates(out) == {"nonfinite_outputs": "passed", "label_agreement": "passed", "max_abs_error": "passed"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("consented: --trust-skops-type" in n for n in manifest["steps"][0]["details"]["scan"]["notes"])
    export = next(s for s in manifest["steps"] if s["name"] == "export")
    assert export["details"]["exporter"] == "skl2onnx + onnxmltools (lightgbm)"


def test_lightgbm_without_consent_is_exit_2_naming_type_and_flag(tabular, tmp_path):
    lightgbm = pytest.importorskip("lightgbm")
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(tabular["x"], tabular["y"])
    path = _dump(model, tmp_path / "lgbm.skops")
    result = _cli(path, "-r", "tabular-fp32", "-o", tmp_path / "out", "--data", tabular["folder"] / "bc.npz")
    assert result.exit_code == 2
    line = result.stderr.strip().splitlines()[-1]  # the one-line error after the progress lines
    assert "unsafe model: skops-type 'lightgbm." in line and "--trust-skops-type lightgbm" in line
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_xgboost_classifier_multiclass_converts(tmp_path):
    xgboost = pytest.importorskip("xgboost")
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    path = _dump(xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(x[::2], y[::2]), tmp_path / "xgb.skops")
    np.savez(tmp_path / "iris.npz", X=x[1::2], y=y[1::2])
    result = optkit.convert(
        path,
        "tabular-fp32",
        tmp_path / "out",
        data=str(tmp_path / "iris.npz"),
        overrides=FAST,
        trust_skops_types=["xgboost.core.Booster", "xgboost.sklearn.XGBClassifier"],  # exact names
    )
    assert result.approved, [(g.name, g.value) for g in result.gates]
    assert result.accuracy.metrics["label_agreement"] == 1.0
    assert result.accuracy.metrics["accuracy_source"] == result.accuracy.metrics["accuracy_artifact"]


@pytest.mark.parametrize("package, cls", [("lightgbm", "LGBMRegressor"), ("xgboost", "XGBRegressor")])
def test_boosted_regressors_convert(tabular, tmp_path, package, cls):
    module = pytest.importorskip(package)
    extra = {"verbose": -1} if package == "lightgbm" else {}
    model = getattr(module, cls)(n_estimators=20, max_depth=3, **extra).fit(tabular["xd"], tabular["yd"])
    path = _dump(model, tmp_path / "r.skops")
    data = str(tabular["folder"] / "diabetes.npz")
    result = optkit.convert(
        path, "tabular-regressor-fp32", tmp_path / "out", data=data, overrides=FAST, trust_skops_types=[package]
    )
    assert result.approved and result.accuracy.metrics["max_rel_error"] < 1e-3


# ----------------------------------------------------------------------------- skops consent


def test_consent_never_trusts_functions(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    assert consented("lightgbm.basic.Booster", ["lightgbm"]) is True
    assert consented("lightgbm.basic.Booster", ["lightgbm.basic.Booster"]) is True
    assert consented("lightgbm.basic.Booster", ["xgboost"]) is False
    assert consented("lightgbmx.Thing", ["lightgbm"]) is False  # a prefix ends at a dot
    assert consented("json.dumps", ["json"]) is False  # a function, even when named
    assert consented("builtins.eval", ["builtins.eval"]) is False
    path = _dump(FunctionTransformer(func=json.dumps).fit([[0.0]]), tmp_path / "f.skops")
    with pytest.raises(UnsafeModelError, match="json.dumps") as info:
        trusted_skops_types(path, ["json"])
    assert "not a class" in info.value.message


def test_consent_for_a_non_skops_model_is_a_usage_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2), np.float32))
    result = _cli(path, "-o", tmp_path / "out", "--data", tmp_path / "d.npz", "--trust-skops-type", "lightgbm")
    assert result.exit_code == 2 and "--trust-skops-type applies to scikit-learn .skops files" in result.stderr


# ----------------------------------------------------------------------------- string inputs


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    (folder / "lines.txt").write_text("\n".join(TEXTS * 2) + "\n\n", encoding="utf-8")
    np.savez(folder / "text.npz", X=np.array(TEXTS * 2), y=np.array(TOPICS * 2))
    return folder


@pytest.mark.parametrize("vectorizer, data", [("TfidfVectorizer", "text.npz"), ("CountVectorizer", "lines.txt")])
def test_text_pipelines_convert_with_string_data(text, tmp_path, vectorizer, data):
    from sklearn.feature_extraction import text as sktext
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(getattr(sktext, vectorizer)(), LogisticRegression()).fit(TEXTS * 3, TOPICS * 3)
    path = _dump(model, tmp_path / "text.skops")
    out = tmp_path / "out"
    result = _cli(path, "-r", "sklearn-fp32", "-o", out, "--data", text / data)
    assert result.exit_code == 0, result.output
    assert set(_gates(out).values()) == {"passed"}
    manifest = json.loads((out / "manifest.json").read_text())
    export = next(s for s in manifest["steps"] if s["name"] == "export")
    assert export["details"]["input_dtype"] == "string" and export["details"]["string_normalizer_locale"] == "C.UTF-8"
    assert manifest["data"]["kind"] == ("npz" if data.endswith("npz") else "text")


def test_one_hot_encoder_on_strings_converts(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    table = np.array([["red", "s"], ["blue", "m"], ["green", "l"], ["red", "m"]] * 5)
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(table, [0, 1, 1, 0] * 5)
    path = _dump(model, tmp_path / "ohe.skops")
    np.savez(tmp_path / "d.npz", X=table)
    result = optkit.convert(path, "sklearn-fp32", tmp_path / "out", data=str(tmp_path / "d.npz"), overrides=FAST)
    assert result.approved and result.accuracy.metrics["label_agreement"] == 1.0


def test_float_data_for_a_text_model_is_a_data_error(text, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, TOPICS)
    path = _dump(model, tmp_path / "t.skops")
    np.savez(tmp_path / "f.npz", X=np.ones(8))
    with pytest.raises(DataError, match="strings"):
        optkit.convert(path, "sklearn-fp32", tmp_path / "out", data=str(tmp_path / "f.npz"), overrides=FAST)


def test_mixed_column_transformer_is_refused_naming_what_is_supported(tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    table = np.array([["red", 1.0], ["blue", 2.0], ["green", 3.0], ["red", 4.0]] * 5, dtype=object)
    mix = ColumnTransformer([("cat", OneHotEncoder(), [0]), ("num", StandardScaler(), [1])])
    model = make_pipeline(mix, LogisticRegression()).fit(table, [0, 1, 1, 0] * 5)
    path = _dump(model, tmp_path / "mix.skops")
    with pytest.raises(SourceModelError, match="mixes string and numeric columns") as info:
        sklearn_source.load(path, tmp_path)
    assert "all-numeric columns" in info.value.hint


# ----------------------------------------------------------------------------- detectors, clusterers


@pytest.mark.parametrize(
    "make",
    [
        lambda: __import__("sklearn.ensemble", fromlist=["x"]).IsolationForest(n_estimators=20, random_state=0),
        lambda: __import__("sklearn.neighbors", fromlist=["x"]).LocalOutlierFactor(novelty=True),
    ],
    ids=["IsolationForest", "LocalOutlierFactor"],
)
def test_outlier_detectors_convert(tabular, tmp_path, make):
    path = _dump(make().fit(tabular["x"]), tmp_path / "det.skops")
    out = tmp_path / "out"
    result = _cli(path, "-r", "outlier-fp32", "-o", out, "--data", tabular["folder"] / "bc.npz")
    assert result.exit_code == 0, result.output
    assert _gates(out) == {"nonfinite_outputs": "passed", "label_agreement": "passed", "max_rel_error": "passed"}
    source = sklearn_source.load(path, tmp_path)
    outputs = source.runner(1).infer({"X": tabular["x"][:5].astype(np.float32)})
    assert source.info.task == "outlier-detection"
    assert outputs["label"].shape == (5, 1) and outputs["scores"].shape == (5, 1)  # skl2onnx's shapes


@pytest.mark.parametrize("cls", ["KMeans", "MiniBatchKMeans"])
def test_clusterers_convert_with_label_shape_n(tabular, tmp_path, cls):
    from sklearn import cluster

    model = getattr(cluster, cls)(n_clusters=3, n_init=2, random_state=0).fit(tabular["x"])
    path = _dump(model, tmp_path / "km.skops")
    result = optkit.convert(
        path, "cluster-fp32", tmp_path / "out", data=str(tabular["folder"] / "bc.npz"), overrides=FAST
    )
    assert result.approved, [(g.name, g.value) for g in result.gates]
    assert result.accuracy.metrics["label_agreement"] == 1.0 and result.accuracy.metrics["max_rel_error"] < 1e-3
    outputs = sklearn_source.load(path, tmp_path).runner(1).infer({"X": tabular["x"][:4]})
    assert outputs["label"].shape == (4,) and outputs["scores"].shape == (4, 3)


def test_detector_without_converter_is_exit_2_naming_it(tabular, tmp_path):
    from sklearn.covariance import EllipticEnvelope

    path = _dump(EllipticEnvelope(random_state=0).fit(tabular["x"]), tmp_path / "ee.skops")
    result = _cli(path, "-r", "outlier-fp32", "-o", tmp_path / "out", "--data", tabular["folder"] / "bc.npz")
    assert result.exit_code == 2 and "no ONNX converter for sklearn.covariance" in result.stderr
    assert "EllipticEnvelope" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda x, y: __import__("sklearn.svm", fromlist=["x"]).LinearSVC().fit(x, y), "without predict_proba"),
        (lambda x, y: __import__("sklearn.neighbors", fromlist=["x"]).LocalOutlierFactor().fit(x), "novelty=True"),
        (lambda x, y: __import__("sklearn.cluster", fromlist=["x"]).DBSCAN().fit(x), "no predict method"),
        (lambda x, y: __import__("sklearn.preprocessing", fromlist=["x"]).StandardScaler().fit(x), "no predict"),
        (lambda x, y: __import__("sklearn.linear_model", fromlist=["x"]).LogisticRegression(), "not fitted"),
    ],
    ids=["LinearSVC", "LOF-no-novelty", "DBSCAN", "StandardScaler", "unfitted"],
)
def test_unsupported_kinds_are_source_errors(tabular, tmp_path, build, match):
    path = _dump(build(tabular["x"][:60], tabular["y"][:60]), tmp_path / "m.skops")
    with pytest.raises(SourceModelError, match=match):
        sklearn_source.load(path, tmp_path)
