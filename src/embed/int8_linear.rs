//! Weight-only int8 matmul as a tract op.
//!
//! tract runs the rest of the encoder, but it has no kernel for int8 weights with fp32
//! activations: given the int8 ONNX it folds the dequantisation into fp32 constants (90 MB, over
//! the Worker's memory budget), and its block-quantised path has only 4-bit formats with scalar
//! kernels in wasm. Quantising the activations too (int8 × int8) costs too much accuracy
//! (model/README.md). So each `x @ Cast(W_int8)` of the graph is replaced by this op: it keeps
//! the weights as int8 (a quarter of the memory) and multiplies with the `int8-matmul` crate's
//! kernel (14-bit activations, int16 dot products; its docs say why). The per-channel scale and
//! the bias remain the graph's own `Mul` and `Add`, applied to the output.

use int8_matmul::{matmul, PackedWeights};
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
    weights: Arc<PackedWeights>,
}

impl PartialEq for Int8MatMul {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights)
    }
}
impl Eq for Int8MatMul {}

impl Int8MatMul {
    /// From an ONNX-layout weight `[k, n]`, row-major.
    pub fn from_k_by_n(weights: &[i8], k: usize, n: usize) -> TractResult<Int8MatMul> {
        let weights = PackedWeights::from_k_by_n(weights, k, n).map_err(|e| anyhow!("{e}"))?;
        Ok(Int8MatMul { weights: Arc::new(weights) })
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

impl Op for Int8MatMul {
    fn name(&self) -> StaticName {
        "Int8MatMul".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("k={} n={}", self.weights.k(), self.weights.n())])
    }

    op_as_typed_op!();
}

impl EvalOp for Int8MatMul {
    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (k, n) = (self.weights.k(), self.weights.n());
        let x = args_1!(inputs);
        ensure!(x.datum_type() == f32::datum_type() && x.shape().last() == Some(&k));
        let rows = x.len() / k;
        let mut shape: TVec<usize> = x.shape().into();
        if let Some(last) = shape.last_mut() {
            *last = n; // `x` has rank ≥ 1: its last axis was just checked
        }
        let x_plain = x.try_as_plain_ram()?;
        let x_slice = x_plain.as_slice::<f32>()?;
        let mut out = vec![0f32; rows * n];
        matmul(x_slice, rows, &self.weights, &mut out).map_err(|e| anyhow!("{e}"))?;
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
        ensure!(shape.last() == Some(&self.weights.k().to_dim()));
        if let Some(last) = shape.last_mut() {
            *last = self.weights.n().to_dim();
        }
        Ok(tvec!(f32::fact(shape)))
    }
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
