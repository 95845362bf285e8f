//! Weight-only int8 matmul as a tract op.
//!
//! tract runs the rest of the encoder, but it has no kernel for int8 weights with fp32
//! activations: given the int8 ONNX it folds the dequantisation into fp32 constants (90 MB, over
//! the Worker's memory budget), and its block-quantised path has only 4-bit formats with scalar
//! kernels in wasm. Quantising the activations too (int8 × int8) costs too much accuracy
//! (model/README.md). So each `x @ Cast(W_int8)` of the graph is replaced by this op: it keeps
//! the weights as int8 (a quarter of the memory) and turns them into fp32 a few rows at a time,
//! inside the matmul, where they stay in cache. The per-channel scale and the bias remain the
//! graph's own `Mul` and `Add`, applied to the output.

use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// `y[.., n] = Σ_k x[.., k] · w[n, k]` with int8 `w`.
#[derive(Debug, Clone)]
pub struct Int8MatMul {
    /// Weights, output-channel-major: row `n` holds the `k` weights of output `n`.
    weights: Arc<Vec<i8>>,
    k: usize,
    n: usize,
}

impl PartialEq for Int8MatMul {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights) && self.k == other.k && self.n == other.n
    }
}
impl Eq for Int8MatMul {}

impl Int8MatMul {
    /// From an ONNX-layout weight `[k, n]`.
    pub fn from_k_by_n(weights: &Tensor) -> TractResult<Int8MatMul> {
        ensure!(weights.datum_type() == i8::datum_type() && weights.rank() == 2);
        let (k, n) = (weights.shape()[0], weights.shape()[1]);
        let src = weights.try_as_plain_ram()?;
        let src = src.as_slice::<i8>()?;
        let mut transposed = vec![0i8; k * n];
        for (row, chunk) in src.chunks_exact(n).enumerate() {
            for (col, &w) in chunk.iter().enumerate() {
                transposed[col * k + row] = w;
            }
        }
        Ok(Int8MatMul { weights: Arc::new(transposed), k, n })
    }
}

impl Op for Int8MatMul {
    fn name(&self) -> StaticName {
        "Int8MatMul".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("k={} n={}", self.k, self.n)])
    }

    op_as_typed_op!();
}

impl EvalOp for Int8MatMul {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        ensure!(x.datum_type() == f32::datum_type() && x.shape().last() == Some(&self.k));
        let rows = x.len() / self.k;
        let mut shape: TVec<usize> = x.shape().into();
        *shape.last_mut().unwrap() = self.n;
        let x_plain = x.try_as_plain_ram()?;
        let x_slice = x_plain.as_slice::<f32>()?;
        let mut out = vec![0f32; rows * self.n];
        matmul_i8(x_slice, rows, self.k, &self.weights, self.n, &mut out);
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for Int8MatMul {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.datum_type == f32::datum_type());
        let mut shape: TVec<TDim> = x.shape.iter().cloned().collect();
        ensure!(shape.last() == Some(&self.k.to_dim()));
        *shape.last_mut().unwrap() = self.n.to_dim();
        Ok(tvec!(f32::fact(shape)))
    }
}

/// Output channels converted to fp32 together: their weights (4 × k floats) stay in L1 while
/// every row of `x` is multiplied with them.
const CHANNELS_PER_BLOCK: usize = 4;

/// `out[r, n] = Σ_k x[r, k] · w[n, k]`.
pub fn matmul_i8(x: &[f32], rows: usize, k: usize, w: &[i8], n: usize, out: &mut [f32]) {
    let mut block = vec![0f32; CHANNELS_PER_BLOCK * k];
    for first in (0..n).step_by(CHANNELS_PER_BLOCK) {
        let count = CHANNELS_PER_BLOCK.min(n - first);
        for (dst, &src) in block.iter_mut().zip(&w[first * k..(first + count) * k]) {
            *dst = src as f32;
        }
        for r in 0..rows {
            let xr = &x[r * k..(r + 1) * k];
            let out_row = &mut out[r * n + first..r * n + first + count];
            if count == CHANNELS_PER_BLOCK {
                let sums = dot4(xr, &block, k);
                out_row.copy_from_slice(&sums);
            } else {
                for (c, o) in out_row.iter_mut().enumerate() {
                    *o = dot(xr, &block[c * k..(c + 1) * k]);
                }
            }
        }
    }
}

/// Four dot products of `x` with the four rows of `block`, eight lanes at a time so the compiler
/// maps each lane array onto SIMD registers (wasm simd128, SSE/AVX natively).
#[inline]
fn dot4(x: &[f32], block: &[f32], k: usize) -> [f32; 4] {
    let (b0, rest) = block.split_at(k);
    let (b1, rest) = rest.split_at(k);
    let (b2, b3) = rest.split_at(k);
    let mut acc = [[0f32; 8]; 4];
    let chunks = k / 8;
    for c in 0..chunks {
        let range = c * 8..c * 8 + 8;
        let xv = &x[range.clone()];
        for (a, b) in
            acc.iter_mut().zip([&b0[range.clone()], &b1[range.clone()], &b2[range.clone()], &b3[range]])
        {
            for l in 0..8 {
                a[l] += xv[l] * b[l];
            }
        }
    }
    let mut sums = [0f32; 4];
    for (s, (a, b)) in sums.iter_mut().zip(acc.iter().zip([b0, b1, b2, b3])) {
        *s = a.iter().sum::<f32>()
            + x[chunks * 8..].iter().zip(&b[chunks * 8..]).map(|(x, w)| x * w).sum::<f32>();
    }
    sums
}

#[inline]
fn dot(x: &[f32], w: &[f32]) -> f32 {
    x.iter().zip(w).map(|(a, b)| a * b).sum()
}

/// Int8 initializers taken out of the ONNX graph, by name.
pub type Int8Weights = Vec<(String, Tensor)>;

/// Moves every int8 initializer of `proto` out of the graph and declares it a graph input
/// instead. tract folds constant subgraphs while typing the model, which would turn each
/// `Cast(int8 weight)` into an fp32 constant four times its size; as inputs they cannot be folded,
/// and [`attach_int8_weights`] puts them back where they belong.
pub fn detach_int8_initializers(proto: &mut pb::ModelProto) -> TractResult<Int8Weights> {
    let graph = proto.graph.as_mut().context("ONNX model has no graph")?;
    let int8 = pb::tensor_proto::DataType::Int8 as i32;
    let (detached, kept): (Vec<_>, Vec<_>) =
        std::mem::take(&mut graph.initializer).into_iter().partition(|t| t.data_type == int8);
    graph.initializer = kept;
    let mut weights = Vec::with_capacity(detached.len());
    for tensor in detached {
        let shape: Vec<usize> = tensor.dims.iter().map(|&d| d as usize).collect();
        ensure!(
            tensor.raw_data.len() == shape.iter().product::<usize>(),
            "int8 initializer {} must store its data as raw bytes",
            tensor.name
        );
        graph.input.push(pb::ValueInfoProto {
            name: tensor.name.clone(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: int8,
                    shape: Some(pb::TensorShapeProto {
                        dim: tensor
                            .dims
                            .iter()
                            .map(|&d| pb::tensor_shape_proto::Dimension {
                                value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        });
        let data: Vec<i8> = tensor.raw_data.iter().map(|&b| b as i8).collect();
        weights.push((tensor.name, tract_ndarray::ArrayD::from_shape_vec(shape, data)?.into()));
    }
    Ok(weights)
}

/// Puts the detached int8 weights back into the typed model: each `EinSum(x, Cast<f32>(w))` becomes
/// an [`Int8MatMul`] holding `w`; any other use of `w` (the word-embedding `Gather`) gets it back as
/// a constant. Returns how many matmuls now run on int8 weights.
pub fn attach_int8_weights(model: &mut TypedModel, weights: Int8Weights) -> TractResult<usize> {
    let mut replaced = 0;
    for (name, tensor) in weights {
        let source = model.node_by_name(&name)?.id;
        let casts: Vec<usize> = model.node(source).outputs[0].successors.iter().map(|s| s.node).collect();
        let mut other_uses = false;
        for cast_id in casts {
            let is_f32_cast = model.node(cast_id).op_as::<Cast>().is_some_and(|c| c.to == f32::datum_type());
            let matmuls: Vec<(usize, usize)> =
                model.node(cast_id).outputs[0].successors.iter().map(|s| (s.node, s.slot)).collect();
            let all_matmuls = is_f32_cast
                && tensor.rank() == 2
                && matmuls.iter().all(|&(n, slot)| slot == 1 && model.node(n).op_as::<EinSum>().is_some());
            if !all_matmuls {
                other_uses = true;
                continue;
            }
            let op = Int8MatMul::from_k_by_n(&tensor)?;
            for (matmul_id, _) in matmuls {
                let node = model.node(matmul_id);
                let x = model.outlet_fact(node.inputs[0])?;
                let (k, n) = (tensor.shape()[0], tensor.shape()[1]);
                let expected: TVec<TDim> =
                    x.shape.iter().take(x.rank() - 1).cloned().chain([n.to_dim()]).collect();
                ensure!(
                    x.shape.last() == Some(&k.to_dim())
                        && model.outlet_fact(node.id.into())?.shape.to_tvec() == expected,
                    "{} is not a plain matmul of [.., {k}] by [{k}, {n}]",
                    node.name
                );
                let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[0]], op.clone())?;
                patch.apply(model)?;
                replaced += 1;
            }
        }
        if other_uses {
            let node = model.node(source);
            let konst = tract_onnx::tract_core::ops::konst::Const::new(tensor.into_arc_tensor())?;
            let patch = TypedModelPatch::replace_single_op(model, node, &[], konst)?;
            patch.apply(model)?;
        }
    }
    // Only the token ids remain inputs; the weight sources are now unused and pruned.
    let ids = model.node_by_name("input_ids")?.id;
    model.set_input_outlets(&[OutletId::new(ids, 0)])?;
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_matmul() {
        let (rows, k, n) = (3, 19, 6);
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let w: Vec<i8> = (0..k * n).map(|i| ((i * 11 % 255) as i32 - 127) as i8).collect(); // [k, n]
        let op = Int8MatMul::from_k_by_n(&Tensor::from_shape(&[k, n], &w).unwrap()).unwrap();
        let mut out = vec![0f32; rows * n];
        matmul_i8(&x, rows, k, &op.weights, n, &mut out);
        for r in 0..rows {
            for c in 0..n {
                let expected: f32 = (0..k).map(|i| x[r * k + i] * w[i * n + c] as f32).sum();
                assert!(
                    (out[r * n + c] - expected).abs() < 1e-3,
                    "{r},{c}: {} vs {expected}",
                    out[r * n + c]
                );
            }
        }
    }
}
