//! Weight-only int8 matmul as a tract op.
//!
//! tract runs the rest of the encoder, but it has no kernel for int8 weights with fp32
//! activations: given the int8 ONNX it folds the dequantisation into fp32 constants (90 MB, over
//! the Worker's memory budget), and its block-quantised path has only 4-bit formats with scalar
//! kernels in wasm. Quantising the activations too (int8 × int8) costs too much accuracy
//! (model/README.md). So each `x @ Cast(W_int8)` of the graph is replaced by this op: it keeps
//! the weights as int8 (a quarter of the memory) and widens them one 16-column panel at a time,
//! inside the matmul, where they stay in cache. The per-channel scale and the bias remain the
//! graph's own `Mul` and `Add`, applied to the output.
//!
//! Natively the panel is widened to fp32. In the Worker, where wasm SIMD is 128 bits wide and has
//! no fused multiply-add, the activations are quantized per row to 14-bit integers instead (not 8:
//! that is what fails parity) and `i32x4.dot_i16x8_s` does 8 multiply-adds per instruction, 1.5×
//! faster with the same parity (BENCHMARKS.md).

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

/// `out[r, c] = Σ_k x[r, k] · w[k, c]`, `w` given as [`to_panels`] arranged it: in the Worker
/// with int16 activations ([`matmul_i16`]), natively in fp32 ([`matmul_f32`]).
pub fn matmul_i8(x: &[f32], rows: usize, k: usize, panels: &[i8], n: usize, out: &mut [f32]) {
    #[cfg(target_arch = "wasm32")]
    matmul_i16(x, rows, k, panels, n, out);
    #[cfg(not(target_arch = "wasm32"))]
    matmul_f32(x, rows, k, panels, n, out);
}

/// Largest quantized activation: 14 bits, so that `k / 2` pair sums of `8191 · 127 · 2` stay
/// within an i32 for `k` up to 2048 (MiniLM's widest is 1536).
const I16_MAX: f32 = 8191.0;

/// The fp32 kernel. Each panel is converted to fp32 once (k × 16 floats, cache-resident) and then
/// every group of four rows of `x` is multiplied with it: per `k`, four broadcasts of `x` times
/// one panel row.
pub fn matmul_f32(x: &[f32], rows: usize, k: usize, panels: &[i8], n: usize, out: &mut [f32]) {
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

/// The int16 kernel: each row of `x` is quantized to 14-bit integers with its own scale, each
/// panel widened to int16 with pairs of `k` interleaved, and `i32x4.dot_i16x8_s` then does 8
/// multiply-adds per instruction where the fp32 kernel needs a multiply and an add for 4.
/// Activations keep 14 bits (the weights have 8), so the result differs from [`matmul_f32`] by
/// well under the weights' own quantization error.
pub fn matmul_i16(x: &[f32], rows: usize, k: usize, panels: &[i8], n: usize, out: &mut [f32]) {
    let pairs = k.div_ceil(2);
    // Row r's pairs (x[2p], x[2p+1]) as two i16 packed in one i32, as the dot product wants them.
    let mut packed = vec![0i32; rows * pairs];
    let mut scales = vec![0f32; rows];
    for r in 0..rows {
        let row = &x[r * k..(r + 1) * k];
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 && max.is_finite() { max / I16_MAX } else { 1.0 };
        scales[r] = scale;
        let quantize = |v: f32| (v / scale).round().clamp(-I16_MAX, I16_MAX) as i16 as u16 as u32;
        for (p, slot) in packed[r * pairs..(r + 1) * pairs].iter_mut().enumerate() {
            let lo = quantize(row[2 * p]);
            let hi = row.get(2 * p + 1).map_or(0, |&v| quantize(v));
            *slot = (lo | (hi << 16)) as i32;
        }
    }
    let mut panel = vec![0i16; pairs * 2 * PANEL];
    for p in 0..n.div_ceil(PANEL) {
        interleave_pairs(&panels[p * k * PANEL..(p + 1) * k * PANEL], k, &mut panel);
        let first = p * PANEL;
        let cols = PANEL.min(n - first);
        let mut r = 0;
        while r < rows {
            let take = if r + ROWS <= rows { ROWS } else { 1 };
            let sums: [[i32; PANEL]; ROWS] = if take == ROWS {
                tile_i16::<ROWS>(&packed[r * pairs..(r + ROWS) * pairs], pairs, &panel)
            } else {
                let [one] = tile_i16::<1>(&packed[r * pairs..(r + 1) * pairs], pairs, &panel);
                [one, [0; PANEL], [0; PANEL], [0; PANEL]]
            };
            for (i, row) in sums.iter().take(take).enumerate() {
                let scale = scales[r + i];
                let dst = &mut out[(r + i) * n + first..(r + i) * n + first + cols];
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = v as f32 * scale;
                }
            }
            r += take;
        }
    }
}

/// One panel (k rows of 16 int8 weights) as int16 with each pair of rows interleaved per
/// column: for pair `p`, `[w(2p, c), w(2p+1, c)]` for c = 0..16, so that four consecutive
/// columns fill one 128-bit register in the order `i32x4.dot_i16x8_s` pairs them.
#[cfg(target_arch = "wasm32")]
fn interleave_pairs(panel: &[i8], k: usize, dst: &mut [i16]) {
    use core::arch::wasm32::*;
    if k % 2 == 1 {
        return interleave_pairs_scalar(panel, k, dst);
    }
    for (pair, out) in panel.chunks_exact(2 * PANEL).zip(dst.chunks_exact_mut(2 * PANEL)) {
        // SAFETY: `pair` is two rows of 16 i8 and `out` 32 i16; wasm loads and stores need no
        // alignment.
        unsafe {
            let a = v128_load(pair.as_ptr().cast::<v128>());
            let b = v128_load(pair.as_ptr().add(PANEL).cast::<v128>());
            let low = i8x16_shuffle::<0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23>(a, b);
            let high = i8x16_shuffle::<8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31>(a, b);
            let o = out.as_mut_ptr();
            v128_store(o.cast::<v128>(), i16x8_extend_low_i8x16(low));
            v128_store(o.add(8).cast::<v128>(), i16x8_extend_high_i8x16(low));
            v128_store(o.add(16).cast::<v128>(), i16x8_extend_low_i8x16(high));
            v128_store(o.add(24).cast::<v128>(), i16x8_extend_high_i8x16(high));
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn interleave_pairs(panel: &[i8], k: usize, dst: &mut [i16]) {
    interleave_pairs_scalar(panel, k, dst)
}

fn interleave_pairs_scalar(panel: &[i8], k: usize, dst: &mut [i16]) {
    for (p, out) in dst.chunks_exact_mut(2 * PANEL).enumerate() {
        let row = |kk: usize| panel.get(kk * PANEL..(kk + 1) * PANEL);
        let (Some(a), b) = (row(2 * p), row(2 * p + 1).filter(|_| 2 * p + 1 < k)) else { break };
        for c in 0..PANEL {
            out[2 * c] = i16::from(a[c]);
            out[2 * c + 1] = b.map_or(0, |b| i16::from(b[c]));
        }
    }
}

/// `R` rows of packed int16 pairs times one interleaved panel: `R × PANEL` i32 sums.
#[cfg(not(target_arch = "wasm32"))]
fn tile_i16<const R: usize>(packed: &[i32], pairs: usize, panel: &[i16]) -> [[i32; PANEL]; R] {
    let mut acc = [[0i32; PANEL]; R];
    for (p, w) in panel.chunks_exact(2 * PANEL).enumerate().take(pairs) {
        for (i, acc) in acc.iter_mut().enumerate() {
            let pair = packed[i * pairs + p];
            let (lo, hi) = (i32::from(pair as i16), i32::from((pair >> 16) as i16));
            for c in 0..PANEL {
                acc[c] += lo * i32::from(w[2 * c]) + hi * i32::from(w[2 * c + 1]);
            }
        }
    }
    acc
}

#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn tile_i16<const R: usize>(packed: &[i32], pairs: usize, panel: &[i16]) -> [[i32; PANEL]; R] {
    use core::arch::wasm32::{i32x4_add, i32x4_dot_i16x8, i32x4_splat, v128, v128_load, v128_store};
    // Named accumulators, written out per row: see `tile`.
    let row = |i: usize| packed.get(i * pairs..(i + 1) * pairs).unwrap_or(&[]);
    let (x0, x1, x2, x3) = (row(0), row(1.min(R - 1)), row(2.min(R - 1)), row(3.min(R - 1)));
    let mut a = [i32x4_splat(0); 16];
    macro_rules! dot_row {
        ($base:expr, $pair:expr, $w:expr) => {{
            let s = i32x4_splat($pair);
            a[$base] = i32x4_add(a[$base], i32x4_dot_i16x8(s, $w[0]));
            a[$base + 1] = i32x4_add(a[$base + 1], i32x4_dot_i16x8(s, $w[1]));
            a[$base + 2] = i32x4_add(a[$base + 2], i32x4_dot_i16x8(s, $w[2]));
            a[$base + 3] = i32x4_add(a[$base + 3], i32x4_dot_i16x8(s, $w[3]));
        }};
    }
    for (p, w) in panel.chunks_exact(2 * PANEL).enumerate().take(pairs) {
        // SAFETY: `w` is 32 i16s; each load reads 8 of them; wasm loads need no alignment.
        let w: [v128; 4] = unsafe {
            let ptr = w.as_ptr();
            [
                v128_load(ptr.cast::<v128>()),
                v128_load(ptr.add(8).cast::<v128>()),
                v128_load(ptr.add(16).cast::<v128>()),
                v128_load(ptr.add(24).cast::<v128>()),
            ]
        };
        if R == 4 {
            let (Some(&v0), Some(&v1), Some(&v2), Some(&v3)) = (x0.get(p), x1.get(p), x2.get(p), x3.get(p))
            else {
                break;
            };
            dot_row!(0, v0, w);
            dot_row!(4, v1, w);
            dot_row!(8, v2, w);
            dot_row!(12, v3, w);
        } else {
            let Some(&v0) = x0.get(p) else { break };
            dot_row!(0, v0, w);
        }
    }
    let mut out = [[0i32; PANEL]; R];
    for (i, row) in out.iter_mut().enumerate() {
        for q in 0..4 {
            // SAFETY: `row` is 16 i32s; each store writes 4 of them.
            unsafe { v128_store(row.as_mut_ptr().add(4 * q).cast::<v128>(), a[4 * i + q]) };
        }
    }
    out
}

/// `dst[i] = src[i] as f32` (both a multiple of 16 long).
fn widen(src: &[i8], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32::from(s);
    }
}

/// `R` rows of `x` (each `k` long) times one fp32 panel: `R × PANEL` sums kept in registers,
/// vectorised by the compiler (the Worker uses [`matmul_i16`] instead).
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

    #[test]
    fn the_int16_kernel_matches_within_activation_quantization() {
        let (rows, k, n) = (7, 19, 21);
        let x: Vec<f32> = (0..rows * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let w: Vec<i8> = (0..k * n).map(|i| ((i * 11 % 255) as i32 - 127) as i8).collect();
        let op = Int8MatMul::from_k_by_n(&w, k, n).unwrap();
        let (mut exact, mut quantized) = (vec![0f32; rows * n], vec![0f32; rows * n]);
        matmul_f32(&x, rows, k, &op.panels, n, &mut exact);
        matmul_i16(&x, rows, k, &op.panels, n, &mut quantized);
        for (e, q) in exact.iter().zip(&quantized) {
            assert!((e - q).abs() < 0.05 + 1e-4 * e.abs(), "{q} vs {e}");
        }
        // The widest MiniLM layer at full scale everywhere: the i32 sums must not overflow.
        let (rows, k, n) = (1, 1536, 16);
        let x = vec![-3.5f32; rows * k];
        let w = vec![-127i8; k * n];
        let op = Int8MatMul::from_k_by_n(&w, k, n).unwrap();
        let mut out = vec![0f32; n];
        matmul_i16(&x, rows, k, &op.panels, n, &mut out);
        let expected = 3.5 * 127.0 * 1536.0;
        assert!(out.iter().all(|&v| ((v - expected) / expected).abs() < 1e-4), "{out:?}");
    }
}
