//! Reading a BERT encoder's shape (`config.json`) and weights
//! (`model.safetensors`, any float dtype, converted to f32) into the CPU
//! encoder's layout: linear weights transposed to `in × out` row-major, and the
//! query/key/value projections fused into one `hidden × 3·hidden` matrix.
//!
//! Tensor names follow Hugging Face's `BertModel`, optionally under a `bert.`
//! prefix (checkpoints saved from `BertFor...` heads); layer norms may use the old
//! `gamma`/`beta` names.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::kernels::Activation;
use super::{Encoder, Layer, Linear, Norm, Precision, Shape};

/// A linear layer as read, before [`Linear::new`] picks its matmul: `w` is
/// `inp × out` row-major.
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

/// The fields of a BERT `config.json` the encoder uses.
#[derive(Deserialize)]
pub(crate) struct Config {
    vocab_size: usize,
    pub(crate) hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "gelu")]
    hidden_act: String,
    pub(crate) max_position_embeddings: usize,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    pub(crate) pad_token_id: usize,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn gelu() -> String {
    "gelu".to_owned()
}

fn eps() -> f64 {
    1e-12
}

/// Why the weights cannot be used; the caller names `model.safetensors` or
/// `config.json`.
#[derive(Debug)]
pub(crate) enum LoadError {
    Config(String),
    Weights(String),
}

struct Tensors {
    map: HashMap<String, Tensor>,
    prefix: &'static str,
}

impl Tensors {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let full = format!("{}{name}", self.prefix);
        let t = self.map.get(&full).ok_or_else(|| LoadError::Weights(format!("tensor {full} is missing")))?;
        if t.dims() != shape {
            return Err(LoadError::Weights(format!("tensor {full} has shape {:?}, expected {shape:?}", t.dims())));
        }
        let bad = |e: candle_core::Error| LoadError::Weights(format!("tensor {full}: {e}"));
        t.to_dtype(DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).map_err(bad)
    }

    /// A `rows × width` tensor with at least one row, any number of rows.
    fn get_rows(&self, name: &str, width: usize) -> Result<Vec<f32>, LoadError> {
        let rows =
            self.map.get(&format!("{}{name}", self.prefix)).and_then(|t| t.dims().first().copied()).unwrap_or(0).max(1);
        self.get(name, &[rows, width])
    }

    /// A `torch.nn.Linear` (`weight` is `out × in`), transposed to `in × out`.
    fn linear(&self, name: &str, inp: usize, out: usize) -> Result<Dense, LoadError> {
        let w = self.get(&format!("{name}.weight"), &[out, inp])?;
        let b = self.get(&format!("{name}.bias"), &[out])?;
        let mut t = vec![0f32; inp * out];
        for (o, row) in w.chunks_exact(inp).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                t[i * out + o] = x;
            }
        }
        Ok(Dense { w: t, b, inp, out })
    }

    fn norm(&self, name: &str, width: usize) -> Result<Norm, LoadError> {
        let has = |leaf: &str| self.map.contains_key(&format!("{}{name}.{leaf}", self.prefix));
        let (g, b) = if has("gamma") { ("gamma", "beta") } else { ("weight", "bias") };
        Ok(Norm {
            gamma: self.get(&format!("{name}.{g}"), &[width])?,
            beta: self.get(&format!("{name}.{b}"), &[width])?,
        })
    }
}

/// Checks `config` and loads the weights in `safetensors` into an [`Encoder`]
/// whose linear layers multiply in `precision`.
pub(crate) fn load(config: &Config, safetensors: &[u8], precision: Precision) -> Result<Encoder, LoadError> {
    let act = match config.hidden_act.as_str() {
        "gelu" => Activation::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
        "relu" => Activation::Relu,
        other => return Err(LoadError::Config(format!("hidden_act {other:?} is not supported"))),
    };
    if let Some(p) = config.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
        return Err(LoadError::Config(format!("position_embedding_type {p:?} is not supported (only absolute)")));
    }
    let (h, heads) = (config.hidden_size, config.num_attention_heads);
    if heads == 0 || h % heads != 0 {
        return Err(LoadError::Config(format!("hidden_size {h} is not a multiple of num_attention_heads {heads}")));
    }
    let map = candle_core::safetensors::load_buffer(safetensors, &Device::Cpu)
        .map_err(|e| LoadError::Weights(format!("cannot read: {e}")))?;
    let prefix =
        match ["", "bert."].into_iter().find(|p| map.contains_key(&format!("{p}embeddings.word_embeddings.weight"))) {
            Some(p) => p,
            None => {
                let why = "not a BERT encoder: tensor embeddings.word_embeddings.weight is missing (also under bert.)";
                return Err(LoadError::Weights(why.into()));
            }
        };
    let w = Tensors { map, prefix };
    let inter = config.intermediate_size;
    let layers = (0..config.num_hidden_layers)
        .map(|i| {
            let l = |s: &str| format!("encoder.layer.{i}.{s}");
            let (q, k, v) = (
                w.linear(&l("attention.self.query"), h, h)?,
                w.linear(&l("attention.self.key"), h, h)?,
                w.linear(&l("attention.self.value"), h, h)?,
            );
            let linear = |d: Dense| Linear::new(d.w, d.b, d.inp, d.out, precision);
            Ok(Layer {
                qkv: linear(fuse(&[q, k, v])),
                out: linear(w.linear(&l("attention.output.dense"), h, h)?),
                ln1: w.norm(&l("attention.output.LayerNorm"), h)?,
                up: linear(w.linear(&l("intermediate.dense"), h, inter)?),
                down: linear(w.linear(&l("output.dense"), inter, h)?),
                ln2: w.norm(&l("output.LayerNorm"), h)?,
            })
        })
        .collect::<Result<Vec<_>, LoadError>>()?;
    // Any number of token types; the encoder uses type 0 only.
    let types = w.get_rows("embeddings.token_type_embeddings.weight", h)?;
    Ok(Encoder {
        shape: Shape { hidden: h, heads, eps: config.layer_norm_eps as f32, act },
        word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
        pos: w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
        type0: types[..h].to_vec(),
        emb_norm: w.norm("embeddings.LayerNorm", h)?,
        layers,
        scratch: Default::default(),
    })
}

/// Concatenates linears that read the same input into one (outputs side by side).
fn fuse(parts: &[Dense]) -> Dense {
    let inp = parts[0].inp;
    let out: usize = parts.iter().map(|p| p.out).sum();
    let mut w = Vec::with_capacity(inp * out);
    for i in 0..inp {
        for p in parts {
            w.extend_from_slice(&p.w[i * p.out..(i + 1) * p.out]);
        }
    }
    Dense { w, b: parts.iter().flat_map(|p| p.b.iter().copied()).collect(), inp, out }
}
