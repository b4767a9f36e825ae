"""Pickle scan: an allow-list of imports (gadgets no deny-list names are refused, real models pass),
and damaged files are SourceModelError, never a finding or an internal error."""

from __future__ import annotations

import pickle
import sys

import pytest

import hostile_models as h
from optkit.errors import SourceModelError, UnsafeModelError
from optkit.scan import scan_source
from optkit.scan.pickles import check_import, scan_pickle_bytes


@pytest.mark.parametrize(
    "builder, name",
    [
        ("joblib_timeit", "from timeit import timeit"),
        ("joblib_runstring", "from numpy.testing._private.utils import runstring"),
        ("pickle_popen_class", "from subprocess import Popen"),
        ("pickle_partial_os_system", "from functools import partial"),
    ],
)
def test_gadgets_outside_any_deny_list_are_refused(tmp_path, builder, name):
    path = getattr(h, builder)(tmp_path)
    with pytest.raises(UnsafeModelError, match=f"'{name}' in .*{path.name}") as info:
        scan_source(path, "sklearn")
    assert "--trust-model-code --trust-pickle" in info.value.hint
    assert info.value.exit_code == 2 and not (tmp_path / "pwned").exists()


def test_partial_gadget_reports_os_system_too():
    import functools
    import os

    data = pickle.dumps(h._Reduce(functools.partial(os.system, "true"), ()), protocol=4)
    names = {f.name for f in scan_pickle_bytes(data, "x.pkl")}
    assert {
        "from functools import partial",
        f"from {os.name if os.name != 'posix' else 'posix'} import system",
    } <= names


@pytest.mark.parametrize(
    "module, name",
    [
        ("copyreg", "_reconstructor"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("__builtin__", "set"),
        ("numpy", "dtype"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.tree._tree", "Tree"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("torch", "float32"),
        ("torch.nn.modules.linear", "Linear"),
        ("torch.nn.functional", "relu"),
        ("numpy", "log1p"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("torch", "UntypedStorage"),
        ("torch", "FloatStorage"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch.serialization", "_get_layout"),
        ("torch._C._nn", "gelu"),
        ("transformers.models.bert.configuration_bert", "BertConfig"),
        ("transformers.models.bert.modeling_bert", "BertModel"),
    ],
)
def test_allowed_imports(module, name):
    pytest.importorskip(module.split(".")[0] if module != "__builtin__" else "builtins")
    assert check_import(module, name) is None


@pytest.mark.parametrize(
    "module, name",
    [
        ("timeit", "timeit"),
        ("numpy.testing._private.utils", "runstring"),
        ("subprocess", "Popen"),
        ("functools", "partial"),
        ("os", "system"),
        ("posix", "system"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("__builtin__", "exec"),
        ("builtins", "type"),
        ("operator", "attrgetter"),
        ("operator", "methodcaller"),
        ("types", "FunctionType"),
        ("types", "CodeType"),
        ("marshal", "loads"),
        ("pickle", "loads"),
        ("ctypes", "CDLL"),
        ("runpy", "run_path"),
        ("code", "InteractiveInterpreter"),
        ("importlib", "import_module"),
        ("threading", "Thread"),
        ("socket", "socket"),
        ("shutil", "rmtree"),
        ("webbrowser", "open"),
        ("numpy", "memmap"),
        ("numpy", "load"),
        ("numpy", "fromfile"),
        ("scipy.io", "FortranFile"),
        ("torch.hub", "load"),
        ("torch", "load"),
        ("torch.storage", "_load_from_bytes"),
        ("torch", "from_file"),
        ("sklearn.datasets", "dump_svmlight_file"),
        ("sklearn.base", "BaseEstimator.__setstate__"),
        ("sklearn.base", "clone"),
        ("collections", "namedtuple"),
        ("copyreg", "add_extension"),
        ("torch.jit", "CompilationUnit"),
        ("torch._C", "CompilationUnit"),
        ("numpy", "testing"),  # a module, not a class
        ("hostile_models", "_Reduce"),  # a class from an imported module, but no model class
        ("__main__", "Net"),  # not there
        ("transformers", "Trainer"),
        ("transformers.pipelines", "pipeline"),
    ],
)
def test_refused_imports(module, name):
    assert check_import(module, name) is not None


def test_an_unknown_module_is_never_imported():
    assert check_import("optkit_not_imported_pkg.models", "Net") is not None
    assert "optkit_not_imported_pkg" not in sys.modules
    data = b"coptkit_not_imported_pkg.models\nNet\n."
    assert [f.name for f in scan_pickle_bytes(data, "x.pkl")] == ["from optkit_not_imported_pkg.models import Net"]


def test_computed_stack_global_is_refused():
    # STACK_GLOBAL whose module name is the result of a call (str via copyreg._reconstructor)
    data = (
        b"\x80\x04"
        b"\x8c\x07copyreg\x8c\x0e_reconstructor\x93"
        b"\x8c\x08builtins\x8c\x03str\x93"
        b"\x8c\x08builtins\x8c\x03str\x93\x8c\x02os\x87R"
        b"\x8c\x06system\x93."
    )
    assert "STACK_GLOBAL of a computed name" in {f.name for f in scan_pickle_bytes(data, "x.pkl")}


def test_real_sklearn_models_pass_with_pickle_and_joblib_all_protocols(tmp_path):
    import joblib
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    x, y = load_iris(return_X_y=True)
    models = [
        LogisticRegression(max_iter=500).fit(x, y),
        RandomForestClassifier(3, random_state=0).fit(x, y),
        make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y),
        HistGradientBoostingClassifier(max_iter=3).fit(x, y),
        OneHotEncoder().fit([["a"], ["b"]]),
    ]
    for i, model in enumerate(models):
        for protocol in (0, 2, 3, 4, 5):
            plain, packed = tmp_path / f"{i}_{protocol}.pkl", tmp_path / f"{i}_{protocol}.joblib"
            plain.write_bytes(pickle.dumps(model, protocol=protocol))
            joblib.dump(model, packed, protocol=protocol)
            for path in (plain, packed):
                assert scan_source(path, "sklearn").passed, path
    joblib.dump(models[0], tmp_path / "z.joblib", compress=3)
    assert scan_source(tmp_path / "z.joblib", "sklearn").passed


def test_real_torch_files_pass(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2), torch.nn.LSTM(2, 2), torch.nn.TransformerEncoderLayer(4, 2)
    )
    for i, obj in enumerate((net, net.state_dict(), {"w": torch.ones(2, dtype=torch.float16), "dt": torch.int8})):
        for zipped in (True, False):
            path = tmp_path / f"{i}{zipped}.pt"
            torch.save(obj, path, _use_new_zipfile_serialization=zipped)
            assert scan_source(path, "torch").passed, path


def test_custom_nn_module_from_an_imported_module_passes(tmp_path):
    pytest.importorskip("torch")
    report = scan_source(h.torch_custom_module(tmp_path), "torch")
    assert report.passed


@pytest.mark.parametrize("builder", ["torchscript_truncated", "torch_save_truncated", "empty_pt", "corrupt_pt2"])
def test_damaged_torch_files_are_source_model_errors(tmp_path, builder):
    if builder != "empty_pt" and builder != "corrupt_pt2":
        pytest.importorskip("torch")
    path = getattr(h, builder)(tmp_path)
    with pytest.raises(
        SourceModelError,
        match=r"cannot scan .*: it looks truncated or corrupt \(|is not a PyTorch "
        r"file \(no zip or pickle header\)",
    ) as info:
        scan_source(path, "torch")
    assert "trust" not in info.value.hint  # never "skip the scan" for a damaged file


@pytest.mark.parametrize(
    "data", [b"", b"\x80\x04\x95", b"\x80\x02cos\nsys", b"garbage that is no pickle", b"\x80\x02]q\x00(K\x01"]
)
def test_damaged_pickles_are_source_model_errors(tmp_path, data):
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    with pytest.raises(SourceModelError, match="truncated or corrupt"):
        scan_source(path, "sklearn")


def test_a_truncated_joblib_is_a_source_model_error(tmp_path):
    path = h.joblib_benign(tmp_path)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(SourceModelError, match="truncated or corrupt"):
        scan_source(path, "sklearn")


def test_cli_guard_exit_code_for_a_damaged_file(tmp_path, capsys):
    from optkit.cli.errors import guarded

    path = h.corrupt_pt2(tmp_path)
    with pytest.raises(SystemExit) as info:
        guarded(lambda: scan_source(path, "torch"))
    err = capsys.readouterr().err
    assert (
        info.value.code == 2
        and "internal error" not in err
        and ("truncated or corrupt" in err or "not a PyTorch file" in err)
    )


def test_joblib_arrays_of_every_kind_are_skipped_exactly(tmp_path):
    import joblib
    import numpy as np

    arrays = {
        "dt": np.array(["2020-01-01"], dtype="datetime64[ns]"),
        "u": np.array(["abc"]),
        "rec": np.zeros(3, dtype=[("a", "f4"), ("b", "i8")]),
        "sub": np.zeros(2, dtype="(2,)f8"),
        "obj": np.array([1, "x", None], dtype=object),
        "be": np.zeros((3, 4), dtype=">i2"),
        "bool": np.ones(3, bool),
        "complex": np.ones(2, complex),
    }
    for protocol in (0, 2, 4, 5):
        path = tmp_path / f"arrays{protocol}.joblib"
        joblib.dump({**arrays, "after": h._Reduce(len, ((),))}, path, protocol=protocol)
        # the gadget after the arrays is seen by the opcode decoder, not a byte search
        findings = scan_source_findings(path)
        assert [(f.name, f.detail.split(":")[0]) for f in findings] == [
            ("from builtins import len", "pickle opcodes")
        ], protocol


def scan_source_findings(path):
    with pytest.raises(UnsafeModelError):
        scan_source(path, "sklearn")
    from optkit.scan.pickles import scan_pickle_file

    return scan_pickle_file(path)[1]


def test_a_joblib_array_of_unknown_size_is_refused():
    # a NumpyArrayWrapper whose shape is a call result: the rest of the stream cannot be followed
    data = b"(cjoblib.numpy_pickle\nNumpyArrayWrapper\no}(Vshape\n(c__builtin__\nint\n(I3\ntRtub\x00\x01."
    findings = scan_pickle_bytes(data, "x.joblib")
    assert [f.name for f in findings] == ["the rest of the stream (joblib array of unknown dtype or shape)"]


def test_hf_trainer_state_files_are_not_scanned(tmp_path):
    folder = h.hf_benign(tmp_path)
    (folder / "training_args.bin").write_bytes(pickle.dumps(h._Reduce(len, ((),))))  # never loaded
    report = scan_source(folder, "torch")
    assert report.passed and any("training_args.bin" in n for n in report.notes)
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(h._Reduce(len, ((),))))
    with pytest.raises(UnsafeModelError, match="pytorch_model.bin"):
        scan_source(folder, "torch")
