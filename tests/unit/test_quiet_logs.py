"""Library code leaves the user's logging as it was: ONNX Runtime's chatter is silenced only for
the quantizer / optimizer call (:mod:`optkit.quiet_logs`)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optkit.io_spec import ModelInfo
from optkit.pass_context import PassContext
from optkit.passes import quantize_dynamic, quantize_static
from optkit.quiet_logs import quiet_logs
from optkit.recipe import QuantizeDynamicPass, QuantizeStaticPass


class Collect(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def user_logging():
    """The user's own set-up: a handler on the root logger at INFO; restored after the test."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    handler = Collect()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield root, handler
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _matmul_model(path):
    """``y = x @ w`` (8 -> 4), a constant weight: something both quantizers rewrite."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _ctx(tmp_path):
    feeds = {"x": np.random.default_rng(1).standard_normal((16, 8)).astype(np.float32)}
    return PassContext(
        tmp_path, ModelInfo(input_names=["x"], output_names=["y"]), 0, validation=SimpleNamespace(feeds=feeds)
    )


@pytest.mark.parametrize("which", ["quantize-dynamic", "quantize-static"])
def test_quantize_pass_leaves_root_logger_as_it_was(user_logging, tmp_path, which):
    root, handler = user_logging
    before = (root.level, root.handlers[:])
    model = _matmul_model(tmp_path / "m.onnx")
    if which == "quantize-dynamic":
        out = quantize_dynamic.run(model, QuantizeDynamicPass(type="quantize-dynamic"), _ctx(tmp_path))
        assert out.details["quantized_ops"]
    else:
        out = quantize_static.run(model, QuantizeStaticPass(type="quantize-static"), _ctx(tmp_path))
        assert out.details["quantize_linear_nodes"] > 0
    assert (root.level, root.handlers) == before
    logging.getLogger("user.app").info("after the pass")
    assert [r.getMessage() for r in handler.records if r.name == "user.app"] == ["after the pass"]


def test_quiet_logs_restores_level_even_when_the_call_fails():
    logger = logging.getLogger("optkit.test.chatty")
    logger.setLevel(logging.DEBUG)
    with pytest.raises(RuntimeError), quiet_logs("optkit.test.chatty"):
        assert logger.level == logging.ERROR
        raise RuntimeError("quantizer failed")
    assert logger.level == logging.DEBUG


def test_quiet_logs_never_makes_a_quieter_logger_louder():
    logger = logging.getLogger("optkit.test.silent")
    logger.setLevel(logging.CRITICAL)
    with quiet_logs("optkit.test.silent"):
        assert logger.level == logging.CRITICAL
    assert logger.level == logging.CRITICAL


def test_module_level_logging_in_the_block_leaves_no_handler_on_a_bare_root():
    """``logging.info()`` (as ORT's quantizer calls it) on a root without handlers would run
    ``basicConfig()`` and leave a handler behind, making the user's own ``basicConfig`` a no-op."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, root.handlers[:]
    root.handlers[:] = []
    try:
        with quiet_logs():
            logging.info("advice from the quantizer")
            logging.warning("more advice")
        after = root.handlers[:]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert after == []
