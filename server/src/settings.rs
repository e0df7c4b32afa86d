//! Typed settings: embedded defaults ← `--config FILE` ← `NAKSHA__SECTION__KEY`
//! environment variables ← command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The defaults, with comments: `config/naksha.toml`.
pub const DEFAULTS: &str = include_str!("../config/naksha.toml");

/// All settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listener and request limits.
    pub server: ServerSettings,
    /// Data directory and engine tuning.
    pub storage: StorageSettings,
    /// Embedding models.
    pub models: ModelsSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[models]`: where embedding models live and where they run.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelsSettings {
    /// Folder with one sub-folder per model.
    pub dir: PathBuf,
    /// `cpu` (16-bit integer matmuls on AVX2 CPUs without AVX-512), `cpu-f32`, `cuda` or `cuda:N`.
    pub device: String,
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// HTTP listen address.
    pub http_addr: SocketAddr,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Request body limit in bytes.
    pub body_limit_bytes: usize,
    /// Required bearer token, when non-empty.
    pub api_key: String,
    /// Hosts an `openai` RAG generator may call (`*`: any).
    pub generator_hosts: Vec<String>,
    /// Host names accepted in the Host header (empty: loopback names on a loopback address, else any).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed (CORS); empty: requests with an Origin header are refused.
    pub cors_origins: Vec<String>,
    /// Open HTTP connections at most (503 beyond).
    pub max_connections: usize,
    /// Seconds to send a request's headers; also the idle keep-alive limit.
    pub header_read_timeout_secs: u64,
    /// Seconds between two pieces of a request body.
    pub body_read_timeout_secs: u64,
    /// Seconds a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout_secs: u64,
}

/// `[storage]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Flush threshold in points.
    pub flush_points: usize,
    /// Merge trigger.
    pub merge_min_segments: usize,
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// Tracing filter.
    pub level: String,
}

/// Errors loading settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read settings file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// A file or variable did not parse, or a value is invalid.
    #[error("invalid settings: {0}")]
    Invalid(String),
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Settings {
    /// Load defaults, then `file`, then the environment variables in `env`.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let mut table: toml::Table = DEFAULTS.parse().map_err(|e| SettingsError::Invalid(format!("defaults: {e}")))?;
        if let Some(path) = file {
            let text = fs_err::read_to_string(path).map_err(|e| SettingsError::Read(path.to_owned(), e))?;
            let user: toml::Table =
                text.parse().map_err(|e| SettingsError::Invalid(format!("{}: {e}", path.display())))?;
            merge(&mut table, user);
        }
        for (key, value) in env {
            if key == "NAKSHA_API_KEY" {
                merge(&mut table, toml::Table::from_iter([("server".into(), api_key_table(value))]));
                continue;
            }
            let Some(rest) = key.strip_prefix("NAKSHA__") else { continue };
            let Some((section, field)) = rest.split_once("__") else {
                return Err(SettingsError::Invalid(format!("{key}: expected NAKSHA__SECTION__KEY")));
            };
            // A TOML value if it parses as one (numbers, booleans), else a string.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            let inner = toml::Table::from_iter([(field.to_lowercase(), parsed)]);
            merge(&mut table, toml::Table::from_iter([(section.to_lowercase(), toml::Value::Table(inner))]));
        }
        let s: Settings =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| SettingsError::Invalid(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Reject values that cannot work.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let bad = |m: &str| Err(SettingsError::Invalid(m.to_owned()));
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes must be at least 1024");
        }
        if self.server.max_connections == 0 {
            return bad("server.max_connections must be positive");
        }
        if self.server.header_read_timeout_secs == 0 || self.server.body_read_timeout_secs == 0 {
            return bad("server.header_read_timeout_secs and server.body_read_timeout_secs must be positive");
        }
        if self.storage.flush_points == 0 {
            return bad("storage.flush_points must be positive");
        }
        if let Err(e) = self.models.device.parse::<naksha_query::embed::DeviceKind>() {
            return Err(SettingsError::Invalid(format!("models.device: {e}")));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format must be \"text\" or \"json\"");
        }
        Ok(())
    }
}

fn api_key_table(v: String) -> toml::Value {
    toml::Value::Table(toml::Table::from_iter([("api_key".into(), toml::Value::String(v))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_environment_layer_in_order() {
        let d = Settings::load(None, []).unwrap();
        assert_eq!(d.server.http_addr.to_string(), "127.0.0.1:6480");
        assert_eq!(d.server.body_limit_bytes, 64 << 20);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("n.toml");
        fs_err::write(&f, "[server]\nhttp_addr = \"127.0.0.1:7000\"\n[storage]\nflush_points = 10\n").unwrap();
        let env = [
            ("NAKSHA__STORAGE__FLUSH_POINTS".to_owned(), "20".to_owned()),
            ("NAKSHA__STORAGE__DATA_DIR".to_owned(), "/tmp/x".to_owned()),
            ("NAKSHA_API_KEY".to_owned(), "s3cret".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let s = Settings::load(Some(&f), env).unwrap();
        assert_eq!(s.server.http_addr.to_string(), "127.0.0.1:7000");
        assert_eq!(s.storage.flush_points, 20);
        assert_eq!(s.storage.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(s.server.api_key, "s3cret");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Settings::load(None, [("NAKSHA__SERVER__HTTP_ADDR".into(), "nope".into())]).unwrap_err();
        assert!(e.to_string().contains("invalid"), "{e}");
        let e = Settings::load(None, [("NAKSHA__SERVER__BOGUS".into(), "1".into())]).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Settings::load(None, [("NAKSHA__LOG__FORMAT".into(), "xml".into())]).unwrap_err();
        assert!(e.to_string().contains("log.format"), "{e}");
    }
}
