"""The fp16 guard's rules for which node to blame (optkit.search.fp16_guard), on finite-maps
scripted by hand over an ``onnx.helper`` graph: no ONNX Runtime session."""

from __future__ import annotations

from onnx import TensorProto, helper

from optkit.search.fp16_guard import _offenders, _to_block


def _graph():
    """x -> big (MatMul) -> a; a -> x_cast_to_fp16_node (Cast, inserted) -> c; c -> use (Add) -> y"""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"], name="big"),
        helper.make_node("Cast", ["a"], ["c"], to=TensorProto.FLOAT16, name="a_cast_to_fp16_node"),
        helper.make_node("Add", ["c", "c"], ["y"], name="use"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])],
    )
    return helper.make_model(graph)


def test_the_offender_is_where_non_finite_values_start_not_where_they_spread():
    model = _graph()
    finite = {"x": True, "a": False, "c": False, "y": False}
    assert [n.name for n in _offenders(model, finite, reference={})] == ["big"]


def test_a_non_finite_value_the_fp32_model_has_too_is_the_models_own():
    model = _graph()
    finite = {"a": False, "c": False, "y": False}
    assert _offenders(model, finite, reference={"a": False}) == []  # "a" is -inf in fp32 as well
    assert [n.name for n in _offenders(model, finite, reference={"a": True})] == ["big"]


def test_an_inserted_cast_blames_its_consumers_and_nothing_is_blocked_twice():
    model = _graph()
    cast = [n for n in model.graph.node if n.op_type == "Cast"]
    originals = {"big", "use"}
    assert _to_block(model, cast, originals, set()) == ["use"]  # the Cast is not an original node
    assert _to_block(model, cast, originals, {"use"}) == []
    big = [n for n in model.graph.node if n.name == "big"]
    assert _to_block(model, big + big, originals, set()) == ["big"]
