//! The models folder: one sub-folder per model, named as clients name the model
//! (`models/all-minilm-l6-v2/config.json`, ...). Folders whose name starts with
//! `.` are skipped (installers unpack there before an atomic rename).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{DeviceKind, Embedder, ModelInfo};
use crate::{Error, Result};

/// Every model in a models folder, loaded.
#[derive(Debug, Default, Clone)]
pub struct Models {
    dir: Option<PathBuf>,
    models: BTreeMap<String, Arc<Embedder>>,
}

impl Models {
    /// No models.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Loads every model under `dir`. A missing folder means no models; a broken
    /// model is an error that names the file.
    pub fn open(dir: &Path, device: DeviceKind) -> Result<Self> {
        let mut models = BTreeMap::new();
        let entries = match fs_err::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self { dir: Some(dir.to_owned()), models })
            }
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type()?.is_dir() {
                continue;
            }
            let started = std::time::Instant::now();
            let model = Embedder::load(&name, &entry.path(), device)?;
            tracing::info!(model = %name, dim = model.dim(), took_ms = started.elapsed().as_millis() as u64, "model loaded");
            models.insert(name, Arc::new(model));
        }
        Ok(Self { dir: Some(dir.to_owned()), models })
    }

    /// The folder the models came from.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The model called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Embedder>> {
        self.models.get(name).cloned().ok_or_else(|| Error::UnknownModel(name.to_owned()))
    }

    /// What is installed, by name.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.models.values().map(|m| m.info().clone()).collect()
    }
}
