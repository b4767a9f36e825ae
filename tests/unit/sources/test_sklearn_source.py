"""scikit-learn: sources, export, validation through the pipeline, on tiny fitted models."""

from __future__ import annotations

import json

import numpy as np
import pytest

import optkit
from optkit.errors import ExportError, SourceModelError, UnsafeModelError
from optkit.sources import sklearn_source
from tests_support import FAST

sklearn = pytest.importorskip("sklearn")
sio = pytest.importorskip("skops.io")


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    from sklearn.datasets import load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("sk")
    x, y = load_wine(return_X_y=True)
    models = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y),
        "rf": RandomForestClassifier(n_estimators=10, random_state=0).fit(x, y),
        "linreg": LinearRegression().fit(x, y.astype(float)),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.skops"
        sio.dump(model, paths[name])
    np.savez(folder / "test.npz", X=x[::3], y=y[::3])
    paths["data"] = folder / "test.npz"
    return paths


@pytest.mark.parametrize("name", ["logreg", "rf"])
def test_classifiers_convert_with_full_label_agreement(wine, tmp_path, name):
    result = optkit.convert(wine[name], "sklearn-fp32", tmp_path / name, data=str(wine["data"]), overrides=FAST)
    assert result.approved, [(g.name, g.value, g.status) for g in result.gates]
    metrics = result.accuracy.metrics
    assert metrics["label_agreement"] == 1.0 and metrics["max_abs_error"] < 1e-4
    assert metrics["accuracy_source"] == metrics["accuracy_artifact"]
    assert result.source.framework == "sklearn" and result.source.kind == "skops"


def test_regressor_uses_relative_error(wine, tmp_path):
    result = optkit.convert(
        wine["linreg"], "sklearn-regressor-fp32", tmp_path / "r", data=str(wine["data"]), overrides=FAST
    )
    assert result.approved and result.accuracy.metrics["max_rel_error"] < 1e-4


def test_label_disagreements_are_listed(wine, tmp_path):
    source = sklearn_source.load(wine["logreg"], tmp_path)
    from optkit.io_spec import ModelInfo
    from optkit.validation.accuracy import compare
    from optkit.validation.data import ValidationSet

    src = {"label": np.array([0, 1, 2, 1]), "probabilities": np.eye(3)[[0, 1, 2, 1]]}
    art = {"label": np.array([0, 2, 2, 1]), "probabilities": np.eye(3)[[0, 2, 2, 1]]}
    vset = ValidationSet("npz", "x", {"X": np.zeros((4, 13))})
    report = compare(src, art, vset, ModelInfo(task="classification"))
    assert report.metrics["label_agreement"] == 0.75
    assert report.disagreements == [{"sample": 1, "source": 1, "artifact": 2, "max_probability_diff": 1.0}]
    assert source.info.labels == ["0", "1", "2"]


def test_pickle_needs_trust(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    path = tmp_path / "m.joblib"
    joblib.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), path)
    with pytest.raises(SourceModelError, match="--trust-pickle"):
        sklearn_source.load(path, tmp_path)
    assert sklearn_source.load(path, tmp_path, trust_pickle=True).kind == "pickle"


def test_foreign_types_in_skops_refused(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "f.skops"
    sio.dump(FunctionTransformer(func=json.dumps).fit([[0.0]]), path)
    with pytest.raises(UnsafeModelError, match="json.dumps"):  # a function, not a scikit-learn class
        sklearn_source.load(path, tmp_path)


def test_corrupt_skops(tmp_path):
    path = tmp_path / "bad.skops"
    path.write_bytes(b"PK\x03\x04nope")
    with pytest.raises(SourceModelError, match="corrupt"):
        sklearn_source.load(path, tmp_path)


def test_unsupported_estimator_is_export_error_and_writes_nothing(tmp_path):
    from sklearn.semi_supervised import LabelSpreading

    x = np.random.default_rng(0).normal(size=(20, 3))
    path = tmp_path / "ls.skops"
    sio.dump(LabelSpreading().fit(x, [0, 1] * 10), path)
    np.savez(tmp_path / "d.npz", X=x)
    with pytest.raises(ExportError, match="LabelSpreading"):
        optkit.convert(path, "sklearn-fp32", tmp_path / "out", data=str(tmp_path / "d.npz"), overrides=FAST)
    assert not (tmp_path / "out").exists()
