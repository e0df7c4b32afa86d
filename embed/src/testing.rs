//! Helpers for tests in this and other crates (feature `testing`): where the
//! real model is installed, and the model itself.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{DeviceKind, Embedder, Models};

/// The default model's name.
pub const MODEL: &str = "all-minilm-l6-v2";

/// The models folder tests use: `$NAKSHA_MODELS_DIR`, else `~/.cache/naksha/models`
/// (where `scripts/test.sh` installs all-MiniLM-L6-v2). Panics with the fix when
/// the model is not there: these tests never skip.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("NAKSHA_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/naksha/models"));
    assert!(
        dir.join(MODEL).join("model.safetensors").exists(),
        "model {MODEL} is not installed in {}: run scripts/install-model.sh {} (scripts/test.sh does)",
        dir.display(),
        dir.display()
    );
    dir
}

/// Every model in [`models_dir`], on the CPU.
pub fn models() -> Models {
    Models::open(&models_dir(), DeviceKind::Cpu).expect("the installed models load")
}

/// The default model.
pub fn model() -> Arc<Embedder> {
    models().get(MODEL).expect("the default model is installed")
}
