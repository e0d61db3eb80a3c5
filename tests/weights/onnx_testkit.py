"""Tiny ONNX models with the signatures of the published files (names, layouts, value ranges), built at test time.

- enhancer: ``input`` (N, 3, S, S) in [-1, 1] -> ``output`` = -input (the colour negative), so an enhanced face is
  ``1 - face`` in [0, 1] terms; the CodeFormer variant also takes ``weight`` float64 (1,).
- occluder: (N, S, S, 3) BGR in [0, 1] -> (N, S, S, 1) = sigmoid(40 (0.9 - blue)): bright blue "covers" the
  face, anything else is visible.
- parser: (N, 3, S, S) ImageNet-normalised -> (N, 19, S, S) scores: class skin (1) = normalised red, hair (17) =
  normalised blue, every other class 0; so red pixels parse as skin, blue as hair, dark ones as background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _save(graph, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def enhancer(path: Path, size: int = 64, batch: int | str = "N", weight_input: bool = False,
             input_name: str = "input") -> Path:
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 3, size, size])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, 3, size, size])
    nodes = [helper.make_node("Neg", [input_name], ["neg"])]
    inputs = [x]
    if weight_input:
        inputs.append(helper.make_tensor_value_info("weight", TensorProto.DOUBLE, [1]))
        nodes += [helper.make_node("Cast", ["weight"], ["wf"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", ["wf", "zero"], ["w0"]),
                  helper.make_node("Add", ["neg", "w0"], ["output"])]
        init = [numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    else:
        nodes[0] = helper.make_node("Neg", [input_name], ["output"])
        init = []
    return _save(helper.make_graph(nodes, "tiny_enhancer", inputs, [y], init), path)


def occluder(path: Path, size: int = 32, batch: int | str = "N") -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, size, size, 3])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, size, size, 1])
    init = [numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1"),
            numpy_helper.from_array(np.array([3], np.int64), "ax"),
            numpy_helper.from_array(np.full(1, 0.9, np.float32), "cut"), numpy_helper.from_array(np.full(1, 40.0, np.float32), "k")]
    nodes = [helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["blue"]),
             helper.make_node("Sub", ["cut", "blue"], ["d"]), helper.make_node("Mul", ["d", "k"], ["z"]),
             helper.make_node("Sigmoid", ["z"], ["output"])]
    return _save(helper.make_graph(nodes, "tiny_occluder", [x], [y], init), path)


def parser(path: Path, size: int = 32, batch: int | str = "N", classes: int = 19) -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, classes, size, size])
    w = np.zeros((classes, 3, 1, 1), np.float32)
    w[1, 0] = 1.0  # skin <- red
    w[17 % classes, 2] = 1.0  # hair <- blue
    init = [numpy_helper.from_array(w, "w")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["output"])]
    return _save(helper.make_graph(nodes, "tiny_parser", [x], [y], init), path)
