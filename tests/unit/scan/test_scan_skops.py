"""skops scan: scikit-learn classes are trusted, functions never (dump_svmlight_file writes files)."""

from __future__ import annotations

import pytest

from hostile_models import skops_benign, skops_dump_svmlight
from optkit.errors import UnsafeModelError
from optkit.scan import scan_source, trusted_skops_types
from optkit.scan.skops_types import is_sklearn_class

skops_io = pytest.importorskip("skops.io")


def test_sklearn_function_in_function_transformer_is_refused(tmp_path):
    path = skops_dump_svmlight(tmp_path)
    with pytest.raises(UnsafeModelError, match=r"dump_svmlight_file' in .*dump_svmlight\.skops") as info:
        scan_source(path, "sklearn")
    # --trust-model-code alone would not load it: the loader passes only trusted_skops_types to skops
    assert "--trust-model-code --trust-pickle" in info.value.hint
    with pytest.raises(UnsafeModelError, match="dump_svmlight_file"):
        trusted_skops_types(path)


def test_benign_pipeline_passes_and_its_trust_list_loads_it(tmp_path):
    path = skops_benign(tmp_path)
    trusted = trusted_skops_types(path)
    assert trusted == ["sklearn.tree._tree.Tree"]  # numpy.log1p is on skops' own default list
    report = scan_source(path, "sklearn")
    assert report.passed and "trusted scikit-learn class sklearn.tree._tree.Tree" in report.notes
    model = skops_io.load(path, trusted=trusted)  # exactly what the loader will pass
    assert model.predict([[5.1, 3.5, 1.4, 0.2]]).shape == (1,)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("sklearn.datasets._svmlight_format_io.dump_svmlight_file", False),  # a function
        ("sklearn.utils._testing.assert_allclose", False),  # a function re-exported from numpy
        ("sklearn.no.such.Thing", False),
        ("numpy.core.multiarray._reconstruct", False),
        ("builtins.eval", False),
    ],
)
def test_is_sklearn_class(name, expected):
    assert is_sklearn_class(name) is expected
