//! One sentence-embedding model: a BERT-family encoder, its tokenizer, and the
//! pooling and normalisation that sentence-transformers' config asks for.
//!
//! A model folder holds, in Hugging Face layout:
//!
//! | file                          | read for                                        | required |
//! |-------------------------------|-------------------------------------------------|----------|
//! | `config.json`                 | encoder shape (BERT config)                     | yes      |
//! | `tokenizer.json`              | tokenizer (WordPiece, normaliser, specials)     | yes      |
//! | `model.safetensors`           | weights                                         | yes      |
//! | `modules.json`                | whether a `Normalize` module follows pooling    | no       |
//! | `1_Pooling/config.json`       | pooling mode: mean (default), cls or max        | no       |
//! | `sentence_bert_config.json`   | `max_seq_length` (default: the position limit)  | no       |

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::batch::{self, BatchLimits};
use crate::chunk::{self, Chunk, ChunkConfig};
use crate::encoder::{self, Encoder, LoadError, Parallelism, Precision};
use crate::pooling::Pooling;
use crate::{Error, Result};

/// Where the encoder runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU, with multi-threaded matmuls (the default; always available).
    /// Where the CPU has AVX2 (and not AVX-512) the linear layers multiply in
    /// 16-bit integers (~1.4× faster end to end on Zen 3; vectors agree with
    /// f32 to cosine ≥ 0.9999).
    #[default]
    Cpu,
    /// The CPU with every matmul in f32: slower, and closest to PyTorch's
    /// arithmetic.
    CpuF32,
    /// A CUDA GPU by ordinal; needs the `cuda` feature.
    Cuda(usize),
}

impl std::str::FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            "cpu-f32" => Ok(DeviceKind::CpuF32),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            _ => s.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(DeviceKind::Cuda).ok_or_else(|| {
                Error::InvalidArgument(format!("device must be cpu, cpu-f32, cuda or cuda:N, not {s:?}"))
            }),
        }
    }
}

impl DeviceKind {
    fn open(self) -> Result<Device> {
        match self {
            DeviceKind::Cpu | DeviceKind::CpuF32 => Ok(Device::Cpu),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda(n) => Device::new_cuda(n).map_err(|e| Error::Device(format!("cuda:{n}: {e}"))),
            #[cfg(not(feature = "cuda"))]
            DeviceKind::Cuda(n) => {
                Err(Error::Device(format!("cuda:{n}: this build has no CUDA support (feature `cuda`)")))
            }
        }
    }
}

/// What a loaded model is, as `GET /v1/models` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Name (the folder name).
    pub name: String,
    /// Output dimension.
    pub dim: usize,
    /// Longest input in tokens, special tokens included; longer input is truncated.
    pub max_tokens: usize,
    /// `cpu`, `cpu-f32` or `cuda:N`.
    pub device: String,
    /// Pooling mode.
    pub pooling: Pooling,
    /// Whether outputs are L2-normalised.
    pub normalize: bool,
}

/// What runs the encoder.
enum Backend {
    /// Naksha's own forward pass ([`crate::encoder`]): the CPU default.
    Cpu(Encoder),
    /// Candle's `BertModel` on a GPU (feature `cuda`).
    Candle { model: Box<BertModel>, device: Device },
}

/// A loaded sentence-embedding model. Cheap to share behind an `Arc`; `embed`
/// takes `&self` and may be called from many threads.
pub struct Embedder {
    info: ModelInfo,
    backend: Backend,
    /// Truncates at `max_tokens`, adds `[CLS]`/`[SEP]`.
    tokenizer: Tokenizer,
    /// No truncation: used for chunking.
    raw: Tokenizer,
    pad_id: u32,
    limits: BatchLimits,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("info", &self.info).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

struct Folder<'a> {
    name: &'a str,
    dir: &'a Path,
}

impl Folder<'_> {
    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
    fn bad(&self, file: &str, reason: impl std::fmt::Display) -> Error {
        Error::BadModel { model: self.name.to_owned(), path: self.path(file), reason: reason.to_string() }
    }
    fn read(&self, file: &str) -> Result<Option<Vec<u8>>> {
        match fs_err::read(self.path(file)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn require(&self, file: &str) -> Result<Vec<u8>> {
        self.read(file)?.ok_or_else(|| Error::MissingFile { model: self.name.to_owned(), path: self.path(file) })
    }
    fn json<T: serde::de::DeserializeOwned>(&self, file: &str, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.bad(file, e))
    }
}

impl Embedder {
    /// Loads the model in folder `dir` under `name`. Every problem names the file.
    pub fn load(name: &str, dir: &Path, device: DeviceKind) -> Result<Self> {
        Self::load_on(name, dir, device, !matches!(device, DeviceKind::Cuda(_)))
    }

    /// [`Embedder::load`], with Naksha's encoder when `own` (CPU only) and
    /// Candle's `BertModel` otherwise.
    fn load_on(name: &str, dir: &Path, device: DeviceKind, own: bool) -> Result<Self> {
        let f = Folder { name, dir };
        let config_bytes = f.require("config.json")?;
        let config: encoder::Config = f.json("config.json", &config_bytes)?;
        let tokenizer_bytes = f.require("tokenizer.json")?;
        let weights = f.require("model.safetensors")?;

        let normalize = match f.read("modules.json")? {
            Some(b) => f.json::<Vec<Module>>("modules.json", &b)?.iter().any(|m| m.kind.ends_with(".Normalize")),
            None => false,
        };
        let pooling = match f.read("1_Pooling/config.json")? {
            Some(b) => {
                let p: PoolingConfig = f.json("1_Pooling/config.json", &b)?;
                match (p.pooling_mode_mean_tokens, p.pooling_mode_cls_token, p.pooling_mode_max_tokens) {
                    _ if p.pooling_mode_mean_sqrt_len_tokens => {
                        return Err(f.bad("1_Pooling/config.json", "pooling mode mean_sqrt_len is not supported"))
                    }
                    (true, false, false) => Pooling::Mean,
                    (false, true, false) => Pooling::Cls,
                    (false, false, true) => Pooling::Max,
                    _ => {
                        return Err(
                            f.bad("1_Pooling/config.json", "exactly one of mean, cls or max pooling must be set")
                        )
                    }
                }
            }
            None => Pooling::Mean,
        };
        let max_seq = match f.read("sentence_bert_config.json")? {
            Some(b) => f.json::<SentenceBertConfig>("sentence_bert_config.json", &b)?.max_seq_length,
            None => None,
        };
        let max_tokens = max_seq.unwrap_or(config.max_position_embeddings).min(config.max_position_embeddings);
        if max_tokens < 8 {
            return Err(f.bad("sentence_bert_config.json", format!("max_seq_length {max_tokens} is too small")));
        }

        let mut raw = Tokenizer::from_bytes(&tokenizer_bytes).map_err(|e| f.bad("tokenizer.json", e))?;
        raw.with_padding(None);
        raw.with_truncation(None).map_err(|e| f.bad("tokenizer.json", e))?;
        let mut tokenizer = raw.clone();
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| f.bad("tokenizer.json", e))?;

        let (backend, limits) = if own {
            let precision = if device == DeviceKind::CpuF32 { Precision::F32 } else { Precision::Int16 };
            let enc = encoder::load(&config, &weights, precision).map_err(|e| match e {
                LoadError::Config(reason) => f.bad("config.json", reason),
                LoadError::Weights(reason) => f.bad("model.safetensors", reason),
            })?;
            let words = raw.get_vocab_size(true);
            if words > enc.vocab() {
                let reason = format!("{words} tokens, more than the model's vocabulary of {}", enc.vocab());
                return Err(f.bad("tokenizer.json", reason));
            }
            (Backend::Cpu(enc), BatchLimits::PACKED)
        } else {
            let device = device.open()?;
            let config: BertConfig = f.json("config.json", &config_bytes)?;
            let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
                .map_err(|e| f.bad("model.safetensors", e))?;
            let model = BertModel::load(vb, &config).map_err(|e| f.bad("model.safetensors", e))?;
            (Backend::Candle { model: Box::new(model), device }, BatchLimits::default())
        };
        let device_name = match device {
            DeviceKind::Cpu => "cpu".to_owned(),
            DeviceKind::CpuF32 => "cpu-f32".to_owned(),
            DeviceKind::Cuda(n) => format!("cuda:{n}"),
        };
        Ok(Self {
            info: ModelInfo {
                name: name.to_owned(),
                dim: config.hidden_size,
                max_tokens,
                device: device_name,
                pooling,
                normalize,
            },
            backend,
            tokenizer,
            raw,
            pad_id: config.pad_token_id as u32,
            limits,
        })
    }

    /// What this model is.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The arithmetic of the encoder's linear layers: `"int16"` (the CPU
    /// default where the CPU has AVX2 and not AVX-512) or `"f32"`.
    pub fn matmul_precision(&self) -> &'static str {
        match &self.backend {
            Backend::Cpu(enc) if enc.is_int16() => "int16",
            _ => "f32",
        }
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.info.dim
    }

    /// Sets the batch limits (rows and padded tokens per forward pass).
    pub fn set_batch_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    /// Token counts after truncation, special tokens included.
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<usize>> {
        let enc = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.iter().map(|e| e.len()).collect())
    }

    /// Tokens in `text` as it is, without truncation or special tokens: what a
    /// token budget (such as RAG's context) counts.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.raw.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?.len())
    }

    /// Embeds `texts`, one vector each, in input order. Input longer than
    /// `max_tokens` is truncated. Blocking and CPU-heavy: call it from a blocking
    /// thread, not an async worker.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let lengths: Vec<usize> = encodings.iter().map(|e| e.len()).collect();
        let groups = batch::plan(&lengths, self.limits);
        let outputs = match &self.backend {
            Backend::Cpu(enc) => {
                // Whole batches side by side, each on one thread, when there are
                // enough of them; otherwise every batch uses every core.
                let threads = rayon::current_num_threads();
                let par = if groups.len() >= threads { Parallelism::None } else { Parallelism::Rayon(threads) };
                let (pooling, normalize) = (self.info.pooling, self.info.normalize);
                groups
                    .par_iter()
                    .map(|group| {
                        let seqs: Vec<&[u32]> = group.iter().map(|&i| encodings[i].get_ids()).collect();
                        enc.encode(&seqs, pooling, normalize, par)
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            Backend::Candle { model, device } => self.candle_embed(model, device, &encodings, &lengths, &groups)?,
        };
        let mut out = vec![Vec::new(); texts.len()];
        for (group, vectors) in groups.into_iter().zip(outputs) {
            for (i, v) in group.into_iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn candle_embed(
        &self,
        model: &BertModel,
        device: &Device,
        encodings: &[tokenizers::Encoding],
        lengths: &[usize],
        groups: &[Vec<usize>],
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        // Batches run side by side on the rayon pool: Candle parallelises only its
        // matmuls, so one batch at a time leaves cores idle in the element-wise
        // ops (GELU, layer norm, softmax) between them.
        groups
            .par_iter()
            .map(|group| {
                let longest = group.iter().map(|&i| lengths[i]).max().unwrap_or(0).max(1);
                let rows = group.len();
                let mut ids = vec![self.pad_id; rows * longest];
                let mut mask = vec![0f32; rows * longest];
                for (r, &i) in group.iter().enumerate() {
                    let row = encodings[i].get_ids();
                    ids[r * longest..r * longest + row.len()].copy_from_slice(row);
                    mask[r * longest..r * longest + row.len()].fill(1.0);
                }
                self.candle_forward(model, device, ids, mask, rows, longest)
            })
            .collect()
    }

    fn candle_forward(
        &self,
        model: &BertModel,
        device: &Device,
        ids: Vec<u32>,
        mask: Vec<f32>,
        rows: usize,
        len: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let ids = Tensor::from_vec(ids, (rows, len), device)?;
        let types = ids.zeros_like()?;
        let mask = Tensor::from_vec(mask, (rows, len), device)?;
        let hidden = model.forward(&ids, &types, Some(&mask))?; // rows × len × dim
        let pooled = pool(&hidden, &mask, self.info.pooling)?;
        let pooled = if self.info.normalize { l2_normalize(&pooled)? } else { pooled };
        Ok(pooled.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    /// Cuts `text` into chunks of at most `cfg.max_tokens` model tokens (clamped
    /// so a chunk plus `[CLS]`/`[SEP]` fits the model), see [`chunk::chunk_spans`].
    pub fn chunk(&self, text: &str, cfg: ChunkConfig) -> Result<Vec<Chunk>> {
        let cfg = ChunkConfig { max_tokens: cfg.max_tokens.min(self.info.max_tokens - 2), ..cfg };
        let enc = self.raw.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        chunk::chunk_spans(text, enc.get_offsets(), cfg)
    }
}

fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> Result<Tensor> {
    let m = mask.unsqueeze(D::Minus1)?.to_dtype(hidden.dtype())?; // rows × len × 1
    Ok(match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
        Pooling::Mean => {
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
            summed.broadcast_div(&counts)?
        }
        Pooling::Max => {
            // Padded positions get a large negative bias so they never win.
            let bias = ((m - 1.0)? * 1e9)?;
            hidden.broadcast_add(&bias)?.max(1)?
        }
    })
}

fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    Ok(x.broadcast_div(&norm)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_padding() -> Result<()> {
        let dev = Device::Cpu;
        // Two rows of three tokens, dim 2; the second row has one padded token.
        let hidden = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6., 1., 1., 3., 3., 100., -100.], (2, 3, 2), &dev)?;
        let mask = Tensor::from_vec(vec![1f32, 1., 1., 1., 1., 0.], (2, 3), &dev)?;
        let mean = pool(&hidden, &mask, Pooling::Mean)?.to_vec2::<f32>()?;
        assert_eq!(mean, vec![vec![3., 4.], vec![2., 2.]]);
        let cls = pool(&hidden, &mask, Pooling::Cls)?.to_vec2::<f32>()?;
        assert_eq!(cls, vec![vec![1., 2.], vec![1., 1.]]);
        let max = pool(&hidden, &mask, Pooling::Max)?.to_vec2::<f32>()?;
        assert_eq!(max, vec![vec![5., 6.], vec![3., 3.]]);
        let n = l2_normalize(&Tensor::from_vec(vec![3f32, 4., 0., 0.], (2, 2), &dev)?)?.to_vec2::<f32>()?;
        assert_eq!(n, vec![vec![0.6, 0.8], vec![0., 0.]]);
        Ok(())
    }

    /// Runs both models on the same short, non-English, empty and over-length
    /// texts: the smallest cosine between their vectors, and whether any differ.
    fn side_by_side(a: &Embedder, b: &Embedder) -> Result<(f64, bool)> {
        let long = "a long text about packages and their dependencies ".repeat(40);
        let texts = ["", "short", "ein Webbrowser für das Internet", "日本語のテキスト", long.as_str()];
        let (va, vb) = (a.embed(&texts)?, b.embed(&texts)?);
        // Both sides are unit vectors: the dot product is the cosine.
        let dot = |x: &Vec<f32>, y: &Vec<f32>| x.iter().zip(y).map(|(p, q)| f64::from(*p) * f64::from(*q)).sum::<f64>();
        let min = va.iter().zip(&vb).map(|(x, y)| dot(x, y)).fold(f64::INFINITY, f64::min);
        Ok((min, va != vb))
    }

    /// Candle's `BertModel` (what the `cuda` build runs) and Naksha's encoder
    /// agree, run side by side on the CPU.
    #[test]
    fn own_encoder_agrees_with_candle() -> Result<()> {
        let dir = crate::testing::models_dir().join(crate::testing::MODEL);
        let own = Embedder::load_on("m", &dir, DeviceKind::CpuF32, true)?;
        let candle = Embedder::load_on("m", &dir, DeviceKind::Cpu, false)?;
        assert!(matches!((&own.backend, &candle.backend), (Backend::Cpu(_), Backend::Candle { .. })));
        let (cosine, _) = side_by_side(&own, &candle)?;
        assert!(cosine > 0.999_99, "cosine {cosine}");
        Ok(())
    }

    /// The default CPU path (16-bit integer matmuls on AVX2 CPUs without AVX-512)
    /// agrees with the f32 one.
    #[test]
    fn integer_matmuls_agree_with_f32() -> Result<()> {
        let dir = crate::testing::models_dir().join(crate::testing::MODEL);
        let int16 = Embedder::load_on("m", &dir, DeviceKind::Cpu, true)?;
        let f32 = Embedder::load_on("m", &dir, DeviceKind::CpuF32, true)?;
        assert_eq!((int16.info.device.as_str(), f32.info.device.as_str()), ("cpu", "cpu-f32"));
        assert_eq!(f32.matmul_precision(), "f32");
        let want = if encoder::int16_preferred() { "int16" } else { "f32" };
        assert_eq!(int16.matmul_precision(), want);
        let (cosine, differ) = side_by_side(&int16, &f32)?;
        assert!(cosine > 0.999_9, "cosine {cosine}");
        if encoder::int16_preferred() {
            assert!(differ, "the default path multiplies in integers on this CPU");
        }
        Ok(())
    }

    #[test]
    fn device_names_parse() {
        assert_eq!("cpu".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert_eq!("cpu-f32".parse::<DeviceKind>().unwrap(), DeviceKind::CpuF32);
        assert_eq!("cuda:1".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(1));
        assert!("tpu".parse::<DeviceKind>().is_err());
    }
}
