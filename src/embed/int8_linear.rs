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
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// `y[.., n] = Σ_k x[.., k] · w[k, n]` with int8 `w`.
#[derive(Debug, Clone)]
pub struct Int8MatMul {
    /// Weights in panels of [`PANEL`] output columns: panel `p` holds, for each `k` in order,
    /// the weights of columns `p·PANEL ..` (zero-padded), so the kernel streams them.
    panels: Arc<Vec<i8>>,
    k: usize,
    n: usize,
}

impl PartialEq for Int8MatMul {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.panels, &other.panels) && self.k == other.k && self.n == other.n
    }
}
impl Eq for Int8MatMul {}

impl Int8MatMul {
    /// From an ONNX-layout weight `[k, n]`, row-major.
    pub fn from_k_by_n(weights: &[i8], k: usize, n: usize) -> TractResult<Int8MatMul> {
        ensure!(weights.len() == k * n);
        Ok(Int8MatMul { panels: Arc::new(to_panels(weights, k, n)), k, n })
    }
}

/// Row lookup in an int8 table (the word embeddings) that stays outside tract's tensors: a tract
/// `Tensor` would copy the 11.7 MB table at load, raising the memory high-water mark.
#[derive(Debug, Clone)]
pub struct Int8Gather {
    table: Arc<Vec<i8>>,
    rows: usize,
    cols: usize,
}

impl PartialEq for Int8Gather {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }
}
impl Eq for Int8Gather {}

impl Op for Int8Gather {
    fn name(&self) -> StaticName {
        "Int8Gather".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Int8Gather {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let indices = args_1!(inputs);
        let indices = indices.to_plain_array_view::<i64>()?;
        let mut out = Vec::with_capacity(indices.len() * self.cols);
        for &i in indices.iter() {
            let row = if i < 0 { i + self.rows as i64 } else { i };
            ensure!((0..self.rows as i64).contains(&row), "token id {i} is outside the vocabulary");
            let start = row as usize * self.cols;
            out.extend_from_slice(&self.table[start..start + self.cols]);
        }
        let shape: TVec<usize> = indices.shape().iter().copied().chain([self.cols]).collect();
        Ok(tvec!(Tensor::from_shape(&shape, &out)?.into_tvalue()))
    }

    op_out_of_plan!();
}

impl TypedOp for Int8Gather {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == i64::datum_type());
        let shape: TVec<TDim> = inputs[0].shape.iter().cloned().chain([self.cols.to_dim()]).collect();
        Ok(tvec!(i8::fact(shape)))
    }
}

/// Rearranges a row-major `[k, n]` matrix into zero-padded panels of [`PANEL`] columns.
pub fn to_panels(w: &[i8], k: usize, n: usize) -> Vec<i8> {
    let count = n.div_ceil(PANEL);
    let mut panels = vec![0i8; count * k * PANEL];
    for p in 0..count {
        let cols = PANEL.min(n - p * PANEL);
        for kk in 0..k {
            let src = &w[kk * n + p * PANEL..kk * n + p * PANEL + cols];
            panels[(p * k + kk) * PANEL..(p * k + kk) * PANEL + cols].copy_from_slice(src);
        }
    }
    panels
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
        if let Some(last) = shape.last_mut() {
            *last = self.n; // `x` has rank ≥ 1: its last axis was just checked
        }
        let x_plain = x.try_as_plain_ram()?;
        let x_slice = x_plain.as_slice::<f32>()?;
        let mut out = vec![0f32; rows * self.n];
        matmul_i8(x_slice, rows, self.k, &self.panels, self.n, &mut out);
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
        if let Some(last) = shape.last_mut() {
            *last = self.n.to_dim();
        }
        Ok(tvec!(f32::fact(shape)))
    }
}

/// Output columns per panel: 16 floats are four 128-bit SIMD registers.
pub const PANEL: usize = 16;
/// Rows of `x` multiplied together with one panel: 4 × 4 accumulator registers.
const ROWS: usize = 4;

/// `out[r, c] = Σ_k x[r, k] · w[k, c]`, `w` given as [`to_panels`] arranged it.
///
/// Each panel is converted to fp32 once (k × 16 floats, cache-resident) and then every group of
/// four rows of `x` is multiplied with it: per `k`, four broadcasts of `x` times one panel row.
/// The fixed-size inner loops are what the compiler turns into SIMD (simd128 in the Worker).
pub fn matmul_i8(x: &[f32], rows: usize, k: usize, panels: &[i8], n: usize, out: &mut [f32]) {
    let mut panel = vec![0f32; k * PANEL];
    for p in 0..n.div_ceil(PANEL) {
        widen(&panels[p * k * PANEL..(p + 1) * k * PANEL], &mut panel);
        let first = p * PANEL;
        let cols = PANEL.min(n - first);
        let mut r = 0;
        while r + ROWS <= rows {
            let sums = tile::<ROWS>(&x[r * k..(r + ROWS) * k], k, &panel);
            for (i, row) in sums.iter().enumerate() {
                out[(r + i) * n + first..(r + i) * n + first + cols].copy_from_slice(&row[..cols]);
            }
            r += ROWS;
        }
        while r < rows {
            let [row] = tile::<1>(&x[r * k..(r + 1) * k], k, &panel);
            out[r * n + first..r * n + first + cols].copy_from_slice(&row[..cols]);
            r += 1;
        }
    }
}

/// `dst[i] = src[i] as f32` (both a multiple of 16 long).
#[cfg(not(target_arch = "wasm32"))]
fn widen(src: &[i8], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s);
    }
}

#[cfg(target_arch = "wasm32")]
fn widen(src: &[i8], dst: &mut [f32]) {
    use core::arch::wasm32::*;
    for (s, d) in src.chunks_exact(16).zip(dst.chunks_exact_mut(16)) {
        // SAFETY: `s` holds 16 bytes and `d` 16 f32s; wasm loads and stores need no alignment.
        unsafe {
            let bytes = v128_load(s.as_ptr().cast::<v128>());
            let halves = [i16x8_extend_low_i8x16(bytes), i16x8_extend_high_i8x16(bytes)];
            for (h, half) in halves.into_iter().enumerate() {
                let quads = [i32x4_extend_low_i16x8(half), i32x4_extend_high_i16x8(half)];
                for (q, quad) in quads.into_iter().enumerate() {
                    v128_store(d.as_mut_ptr().add(8 * h + 4 * q).cast::<v128>(), f32x4_convert_i32x4(quad));
                }
            }
        }
    }
}

/// `R` rows of `x` (each `k` long) times one fp32 panel: `R × PANEL` sums kept in registers.
///
/// Native builds leave the vectorising to the compiler. The Worker is built for size (the script
/// has a gzipped-size limit), and LLVM does not vectorise loops below `opt-level = 2`, so the wasm
/// build spells the simd128 instructions out.
#[cfg(not(target_arch = "wasm32"))]
#[inline(always)]
fn tile<const R: usize>(x: &[f32], k: usize, panel: &[f32]) -> [[f32; PANEL]; R] {
    let mut acc = [[0f32; PANEL]; R];
    for (kk, w_row) in panel.chunks_exact(PANEL).enumerate().take(k) {
        let Ok(w_row) = <&[f32; PANEL]>::try_from(w_row) else { continue };
        for i in 0..R {
            let xv = x[i * k + kk];
            for j in 0..PANEL {
                acc[i][j] += xv * w_row[j];
            }
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn tile<const R: usize>(x: &[f32], k: usize, panel: &[f32]) -> [[f32; PANEL]; R] {
    use core::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128, v128_load, v128_store};
    // Written out row by row, with named accumulators: at the size-optimising levels the Worker
    // is built with, LLVM neither unrolls loops nor keeps arrays of vectors in registers.
    let row = |i: usize| x.get(i * k..(i + 1) * k).unwrap_or(&[]);
    let (x0, x1, x2, x3) = (row(0), row(1.min(R - 1)), row(2.min(R - 1)), row(3.min(R - 1)));
    let zero = f32x4_splat(0.0);
    let mut a = [zero; 16];
    macro_rules! fma_row {
        ($base:expr, $xv:expr, $w:expr) => {{
            let s = f32x4_splat($xv);
            a[$base] = f32x4_add(a[$base], f32x4_mul(s, $w[0]));
            a[$base + 1] = f32x4_add(a[$base + 1], f32x4_mul(s, $w[1]));
            a[$base + 2] = f32x4_add(a[$base + 2], f32x4_mul(s, $w[2]));
            a[$base + 3] = f32x4_add(a[$base + 3], f32x4_mul(s, $w[3]));
        }};
    }
    for (kk, w_row) in panel.chunks_exact(PANEL).enumerate().take(k) {
        // SAFETY: `w_row` is 16 f32s; each load reads 4 of them; wasm loads need no alignment.
        let w: [v128; 4] = unsafe {
            let p = w_row.as_ptr();
            [
                v128_load(p.cast::<v128>()),
                v128_load(p.add(4).cast::<v128>()),
                v128_load(p.add(8).cast::<v128>()),
                v128_load(p.add(12).cast::<v128>()),
            ]
        };
        if R == 4 {
            let (Some(&v0), Some(&v1), Some(&v2), Some(&v3)) =
                (x0.get(kk), x1.get(kk), x2.get(kk), x3.get(kk))
            else {
                break;
            };
            fma_row!(0, v0, w);
            fma_row!(4, v1, w);
            fma_row!(8, v2, w);
            fma_row!(12, v3, w);
        } else {
            let Some(&v0) = x0.get(kk) else { break };
            fma_row!(0, v0, w);
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for (i, row) in out.iter_mut().enumerate() {
        for q in 0..4 {
            // SAFETY: `row` is 16 f32s; each store writes 4 of them.
            unsafe { v128_store(row.as_mut_ptr().add(4 * q).cast::<v128>(), a[4 * i + q]) };
        }
    }
    out
}

/// Int8 initializers taken out of the ONNX graph, by name.
pub type Int8Weights = Vec<(String, Vec<usize>, Vec<i8>)>;

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
    for mut tensor in detached {
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
        // The raw bytes become the int8 data in place: no second copy of the largest tensors.
        let mut raw = std::mem::ManuallyDrop::new(std::mem::take(&mut tensor.raw_data));
        // SAFETY: u8 and i8 have the same size and alignment, and the allocation is handed over
        // whole (pointer, length, capacity) to exactly one new owner.
        let data: Vec<i8> =
            unsafe { Vec::from_raw_parts(raw.as_mut_ptr().cast::<i8>(), raw.len(), raw.capacity()) };
        weights.push((tensor.name, shape, data));
    }
    Ok(weights)
}

/// Puts the detached int8 weights back into the typed model: each `EinSum(x, Cast<f32>(w))` becomes
/// an [`Int8MatMul`] holding `w`, a row `Gather` of `w` (the word embeddings) an [`Int8Gather`];
/// any other use gets `w` back as a constant. Returns how many matmuls now run on int8 weights.
pub fn attach_int8_weights(model: &mut TypedModel, weights: Int8Weights) -> TractResult<usize> {
    let mut replaced = 0;
    for (name, shape, data) in weights {
        let source = model.node_by_name(&name)?.id;
        let users: Vec<(usize, usize)> =
            model.node(source).outputs[0].successors.iter().map(|s| (s.node, s.slot)).collect();
        let data = Arc::new(data);
        let mut other_uses = false;
        for (user, slot) in users {
            let node = model.node(user);
            if let Some(gather) = node.op_as::<Gather>() {
                if gather.axis == 0 && slot == 0 && shape.len() == 2 {
                    let op = Int8Gather { table: data.clone(), rows: shape[0], cols: shape[1] };
                    let patch = TypedModelPatch::replace_single_op(model, node, &[node.inputs[1]], op)?;
                    patch.apply(model)?;
                    continue;
                }
            }
            let is_f32_cast = node.op_as::<Cast>().is_some_and(|c| c.to == f32::datum_type());
            let matmuls: Vec<(usize, usize)> =
                node.outputs[0].successors.iter().map(|s| (s.node, s.slot)).collect();
            let all_matmuls = is_f32_cast
                && shape.len() == 2
                && matmuls.iter().all(|&(n, slot)| slot == 1 && model.node(n).op_as::<EinSum>().is_some());
            if !all_matmuls {
                other_uses = true;
                continue;
            }
            let (k, n) = (shape[0], shape[1]);
            let op = Int8MatMul::from_k_by_n(&data, k, n)?;
            for (matmul_id, _) in matmuls {
                let node = model.node(matmul_id);
                let x = model.outlet_fact(node.inputs[0])?;
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
            let tensor: Tensor = tract_ndarray::ArrayD::from_shape_vec(shape, data.to_vec())?.into();
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
        let (rows, k, n) = (7, 19, 21); // a partial row group and a partial panel
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let w: Vec<i8> = (0..k * n).map(|i| ((i * 11 % 255) as i32 - 127) as i8).collect(); // [k, n]
        let op = Int8MatMul::from_k_by_n(&w, k, n).unwrap();
        let mut out = vec![0f32; rows * n];
        matmul_i8(&x, rows, k, &op.panels, n, &mut out);
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
