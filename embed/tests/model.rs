//! The real all-MiniLM-L6-v2 model, installed by `scripts/install-model.sh`
//! (`scripts/test.sh` does it): exactness against sentence-transformers,
//! truncation, batching, normalisation, chunking and load errors.

use naksha_embed::testing::{model, models_dir, MODEL};
use naksha_embed::{ChunkConfig, DeviceKind, Error, Models};

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[derive(serde::Deserialize)]
struct Reference {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn reference() -> Vec<Reference> {
    let raw = include_str!("data/reference.jsonl");
    raw.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Both CPU paths: the default (16-bit integer matmuls on AVX2 CPUs without AVX-512)
/// and `cpu-f32`.
#[test]
fn agrees_with_sentence_transformers() {
    let refs = reference();
    assert_eq!(refs.len(), 200);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    for device in [DeviceKind::Cpu, DeviceKind::CpuF32] {
        let model = Models::open(&models_dir(), device).unwrap().get(MODEL).unwrap();
        let ours = model.embed(&texts).unwrap();
        let mut worst = (1.0f64, "");
        for (r, v) in refs.iter().zip(&ours) {
            assert_eq!(v.len(), 384);
            let c = cosine(&r.vector, v);
            if c < worst.0 {
                worst = (c, &r.text);
            }
        }
        let precision = model.matmul_precision();
        eprintln!("exactness ({device:?}, {precision} matmuls): worst cosine over 200 texts = {:.6}", worst.0);
        assert!(worst.0 >= 0.999, "{device:?}: cosine {} for {:?}", worst.0, worst.1);
    }
    // The reference covers what it claims: truncated input, non-ASCII and empty text.
    assert!(refs.iter().filter(|r| r.tokens > 256).count() >= 20);
    assert!(refs.iter().filter(|r| !r.text.is_ascii()).count() >= 40);
    assert!(refs.iter().any(|r| r.text.is_empty()));
}

#[test]
fn truncates_at_the_model_limit() {
    let model = model();
    assert_eq!(model.info().max_tokens, 256);
    let refs = reference();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let counts = model.token_counts(&texts).unwrap();
    for (r, n) in refs.iter().zip(counts) {
        assert_eq!(n, r.tokens.min(256), "{:?}", r.text);
    }
    // Words past the limit change nothing.
    let long = "packages ".repeat(400);
    let longer = format!("{long} and then something entirely different about astronomy");
    let v = model.embed(&[long.as_str(), longer.as_str()]).unwrap();
    assert!(cosine(&v[0], &v[1]) > 0.999_999);
}

#[test]
fn batching_does_not_change_results_and_outputs_are_normalised() {
    let model = model();
    let texts = ["short", "a somewhat longer sentence about vector databases and search", "日本語のテキスト"];
    // With 100 more texts the batches run side by side, one thread each; one
    // text alone is one batch over every thread: both give the same vectors.
    let filler: Vec<String> = (0..100).map(|i| format!("filler text number {i} about packages")).collect();
    let mut many: Vec<&str> = filler.iter().map(String::as_str).collect();
    many.splice(40..40, texts);
    let all = model.embed(&many).unwrap();
    let together = model.embed(&texts).unwrap();
    for (i, (t, v)) in texts.iter().zip(&together).enumerate() {
        let alone = model.embed(&[t]).unwrap();
        assert!(cosine(&alone[0], v) > 0.999_99, "{t}");
        assert!(cosine(&all[40 + i], v) > 0.999_99, "{t}");
        let norm: f64 = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(model.embed(&[]).unwrap().is_empty());
    // Related texts are closer than unrelated ones.
    let v =
        model.embed(&["a web browser", "a program to browse the internet", "a library for matrix algebra"]).unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
}

#[test]
fn chunks_fit_the_model_and_cover_the_text() {
    let model = model();
    let text = reference().into_iter().map(|r| r.text).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n");
    let cfg = ChunkConfig { max_tokens: 128, overlap_tokens: 16 };
    let chunks = model.chunk(&text, cfg).unwrap();
    assert!(chunks.len() > 50);
    assert_eq!(chunks[0].start, 0);
    assert_eq!(chunks.last().unwrap().end, text.chars().count());
    for w in chunks.windows(2) {
        assert!(w[1].start <= w[0].end && w[1].start > w[0].start);
    }
    let pieces: Vec<&str> = chunks.iter().map(|c| &text[c.bytes.clone()]).collect();
    for (c, n) in chunks.iter().zip(model.token_counts(&pieces).unwrap()) {
        assert!(c.tokens <= 128);
        assert!(n <= 128 + 2, "chunk re-tokenises to {n} tokens");
    }
    // A limit above the model's is clamped so [CLS] + chunk + [SEP] still fits.
    let big = model.chunk(&text, ChunkConfig { max_tokens: 10_000, overlap_tokens: 0 }).unwrap();
    assert!(big.iter().all(|c| c.tokens <= 254));
}

#[test]
fn broken_model_folders_name_the_file() {
    let src = models_dir().join(MODEL);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("broken");
    fs_err::create_dir_all(dir.join("1_Pooling")).unwrap();
    for f in ["config.json", "tokenizer.json", "modules.json", "1_Pooling/config.json"] {
        fs_err::copy(src.join(f), dir.join(f)).unwrap();
    }
    // No weights.
    match Models::open(tmp.path(), DeviceKind::Cpu).unwrap_err() {
        Error::MissingFile { path, .. } => assert!(path.ends_with("model.safetensors")),
        e => panic!("unexpected {e}"),
    }
    // Weights that are not safetensors.
    fs_err::write(dir.join("model.safetensors"), b"not a tensor file").unwrap();
    let e = Models::open(tmp.path(), DeviceKind::Cpu).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
    // Real safetensors without a BERT encoder's tensors: the tensor is named.
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&1f32.to_le_bytes());
    fs_err::write(dir.join("model.safetensors"), file).unwrap();
    let e = Models::open(tmp.path(), DeviceKind::Cpu).unwrap_err();
    assert!(e.to_string().contains("model.safetensors") && e.to_string().contains("word_embeddings"), "{e}");
    // An activation the encoder does not implement.
    let config = fs_err::read_to_string(src.join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["hidden_act"] = "swish".into();
    fs_err::write(dir.join("config.json"), config.to_string()).unwrap();
    let e = Models::open(tmp.path(), DeviceKind::Cpu).unwrap_err();
    assert!(e.to_string().contains("config.json") && e.to_string().contains("swish"), "{e}");
    // A config that is not JSON.
    fs_err::write(dir.join("config.json"), b"{oops").unwrap();
    let e = Models::open(tmp.path(), DeviceKind::Cpu).unwrap_err();
    assert!(matches!(e, Error::BadModel { .. }) && e.to_string().contains("config.json"), "{e}");
    // An empty folder: the first required file is named.
    let empty = tempfile::tempdir().unwrap();
    fs_err::create_dir(empty.path().join("nothing")).unwrap();
    let e = Models::open(empty.path(), DeviceKind::Cpu).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");
    // A missing models folder is simply empty; unknown names are reported.
    let none = Models::open(&tmp.path().join("absent"), DeviceKind::Cpu).unwrap();
    assert!(none.list().is_empty());
    assert!(matches!(none.get("x"), Err(Error::UnknownModel(_))));
}

#[test]
#[cfg(not(feature = "cuda"))]
fn cuda_without_the_feature_is_a_clear_error() {
    let e = Models::open(&models_dir(), DeviceKind::Cuda(0)).unwrap_err();
    assert!(e.to_string().contains("CUDA"), "{e}");
}

/// In a `cuda` build (`scripts/check-cuda.sh`): with a GPU the CUDA path agrees
/// with the CPU's f32 path; without one, asking for it is a clear error.
#[test]
#[cfg(feature = "cuda")]
fn cuda_agrees_with_the_cpu_or_fails_clearly() {
    match Models::open(&models_dir(), DeviceKind::Cuda(0)) {
        Ok(models) => {
            let gpu = models.get(MODEL).unwrap();
            let cpu = Models::open(&models_dir(), DeviceKind::CpuF32).unwrap().get(MODEL).unwrap();
            assert_eq!(gpu.info().device, "cuda:0");
            let refs = reference();
            let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
            for (a, b) in gpu.embed(&texts).unwrap().iter().zip(cpu.embed(&texts).unwrap()) {
                assert!(cosine(a, &b) > 0.9999);
            }
        }
        Err(e) => assert!(e.to_string().contains("cuda:0"), "{e}"),
    }
}
