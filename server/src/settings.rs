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
    /// JWT verification.
    pub auth: AuthSettings,
    /// Tenant databases.
    pub tenants: TenantsSettings,
    /// The audit log.
    pub audit: AuditSettings,
    /// Ingestion jobs.
    pub jobs: JobsSettings,
    /// Snapshots and S3 backups.
    pub backup: BackupSettings,
}

/// `[backup]`: snapshots, S3 backups and their schedule.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackupSettings {
    /// Bucket for backups (empty: S3 backups off).
    pub s3_bucket: String,
    /// Key prefix inside the bucket.
    pub s3_prefix: String,
    /// Endpoint of an S3-compatible store (empty: AWS).
    pub s3_endpoint: String,
    /// Region (empty: the environment's, else us-east-1).
    pub s3_region: String,
    /// File holding the access key id (with `s3_secret_access_key_file`; else the SDK's credential chain).
    pub s3_access_key_id_file: String,
    /// File holding the secret access key.
    pub s3_secret_access_key_file: String,
    /// Part size of multipart uploads in MiB (at least 5): the memory an upload holds.
    pub s3_part_mib: usize,
    /// Cron schedule (UTC) of automatic backups of every collection (empty: none).
    pub schedule: String,
    /// Scheduled backups kept: the newest of each of this many days.
    pub keep_daily: usize,
    /// ... and of each of this many ISO weeks.
    pub keep_weekly: usize,
    /// Folders a restore may read archives from by path (empty: restores by path are refused).
    pub restore_dirs: Vec<PathBuf>,
}

/// `[jobs]`: ingestion jobs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobsSettings {
    /// Folders file sources may read from (empty: file sources are refused).
    pub import_dirs: Vec<PathBuf>,
    /// Jobs running at once.
    pub max_concurrent: usize,
    /// Finished jobs kept.
    pub keep_finished: usize,
    /// First retry delay in milliseconds (doubling, at most 30 s).
    pub retry_backoff_ms: u64,
}

/// `[auth]`: JWTs.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 shared secret (empty: none).
    pub jwt_secret: String,
    /// File holding the HS256 secret.
    pub jwt_secret_file: String,
    /// PEM files with RS256 / ES256 public keys.
    pub jwt_public_key_files: Vec<PathBuf>,
}

/// `[tenants]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TenantsSettings {
    /// Tenant databases open at most.
    pub max_open: usize,
    /// Seconds before an unused tenant is closed.
    pub idle_close_secs: u64,
}

/// `[audit]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Rotation size.
    pub max_file_bytes: u64,
    /// Old files kept.
    pub keep_files: usize,
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
    /// The bootstrap admin key, when non-empty.
    pub api_key: String,
    /// File holding the admin key.
    pub api_key_file: String,
    /// PEM certificate chain for TLS.
    pub tls_cert_file: String,
    /// PEM private key for TLS.
    pub tls_key_file: String,
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
            if key == "NAKSHA_API_KEY" || key == "NAKSHA_API_KEY_FILE" {
                let field = if key.ends_with("_FILE") { "api_key_file" } else { "api_key" };
                merge(&mut table, toml::Table::from_iter([("server".into(), string_table(field, value))]));
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
        let mut s: Settings =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| SettingsError::Invalid(e.to_string()))?;
        read_secret(&mut s.server.api_key, &s.server.api_key_file, "server.api_key")?;
        read_secret(&mut s.auth.jwt_secret, &s.auth.jwt_secret_file, "auth.jwt_secret")?;
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
        if self.server.tls_cert_file.is_empty() != self.server.tls_key_file.is_empty() {
            return bad("server.tls_cert_file and server.tls_key_file go together");
        }
        if !self.auth.jwt_secret.is_empty() && self.auth.jwt_secret.len() < 32 {
            return bad("auth.jwt_secret must be at least 32 bytes");
        }
        if self.tenants.max_open == 0 || self.tenants.idle_close_secs == 0 {
            return bad("tenants.max_open and tenants.idle_close_secs must be positive");
        }
        if self.jobs.max_concurrent == 0 || self.jobs.retry_backoff_ms == 0 {
            return bad("jobs.max_concurrent and jobs.retry_backoff_ms must be positive");
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return bad("log.format must be \"text\" or \"json\"");
        }
        Ok(())
    }
}

fn string_table(field: &str, v: String) -> toml::Value {
    toml::Value::Table(toml::Table::from_iter([(field.into(), toml::Value::String(v))]))
}

/// Fill a secret from its `_file` setting (trailing newlines dropped); both set is an error.
fn read_secret(value: &mut String, file: &str, name: &str) -> Result<(), SettingsError> {
    if file.is_empty() {
        return Ok(());
    }
    if !value.is_empty() {
        return Err(SettingsError::Invalid(format!("{name} and {name}_file are both set; set one")));
    }
    let text = fs_err::read_to_string(file).map_err(|e| SettingsError::Read(PathBuf::from(file), e))?;
    *value = text.trim_end_matches(['\n', '\r']).to_owned();
    if value.is_empty() {
        return Err(SettingsError::Invalid(format!("{name}_file {file} is empty")));
    }
    Ok(())
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
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        fs_err::write(&f, "from-a-file\n").unwrap();
        let path = f.display().to_string();
        let s = Settings::load(None, [("NAKSHA_API_KEY_FILE".to_owned(), path.clone())]).unwrap();
        assert_eq!(s.server.api_key, "from-a-file");
        let secret = dir.path().join("jwt");
        fs_err::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
        let s =
            Settings::load(None, [("NAKSHA__AUTH__JWT_SECRET_FILE".to_owned(), secret.display().to_string())]).unwrap();
        assert_eq!(s.auth.jwt_secret.len(), 32);
        let both = [("NAKSHA_API_KEY".to_owned(), "x".to_owned()), ("NAKSHA_API_KEY_FILE".to_owned(), path)];
        assert!(Settings::load(None, both).unwrap_err().to_string().contains("both"));
        let missing = [("NAKSHA_API_KEY_FILE".to_owned(), "/nonexistent/key".to_owned())];
        assert!(Settings::load(None, missing).is_err());
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
