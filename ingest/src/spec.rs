//! The job body: `source → mapping → (chunking) → (embedding) → upsert`.
//!
//! The same document arrives as JSON over HTTP or as YAML through the CLI.
//! [`JobSpec::validate`] checks everything that needs no I/O; the runner then
//! probes the source (columns) before the job starts.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Error, Result};

/// Largest batch a job may ask for.
pub const MAX_BATCH_SIZE: usize = 10_000;

/// A job body.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The target collection (it must exist).
    pub collection: String,
    /// Where the items come from.
    pub source: SourceSpec,
    /// Which fields become the id, text, payload and vector.
    pub mapping: Mapping,
    /// Items per write (default 500).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Bad items tolerated before the job fails (default 1,000).
    #[serde(default = "default_budget")]
    pub max_failed: u64,
    /// Attempts at a transient failure (lost connection, 5xx, throttling) before the job fails (default 8).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
}

fn default_batch() -> usize {
    500
}

fn default_budget() -> u64 {
    1000
}

fn default_retries() -> u32 {
    8
}

/// Which fields of a row become what.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = JobMapping)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The field holding the point id (a non-negative integer or a string).
    pub id: String,
    /// Text fields: stored as the point's text (BM25, embedding) or, with `chunk`, joined into one document.
    #[serde(default)]
    pub text: Vec<String>,
    /// Fields copied into the payload.
    #[serde(default)]
    pub payload: Vec<String>,
    /// The field holding a ready vector; `null`: the collection's model embeds the text.
    #[serde(default)]
    pub vector: Option<String>,
    /// Cut the text into chunks with the collection's chunking (each chunk a point `{id}#{n}`).
    #[serde(default)]
    pub chunk: bool,
    /// With `chunk`: the field used as the document title.
    #[serde(default)]
    pub title: Option<String>,
}

impl Mapping {
    /// Every field the mapping reads, each once, with the mapping key that names it.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let mut out: Vec<(&'static str, &str)> = vec![("mapping.id", self.id.as_str())];
        out.extend(self.text.iter().map(|f| ("mapping.text", f.as_str())));
        out.extend(self.payload.iter().map(|f| ("mapping.payload", f.as_str())));
        out.extend(self.vector.iter().map(|f| ("mapping.vector", f.as_str())));
        out.extend(self.title.iter().map(|f| ("mapping.title", f.as_str())));
        let mut seen = std::collections::HashSet::new();
        out.retain(|(_, f)| seen.insert(*f));
        out
    }

    /// Reject a field the source does not have, naming it.
    pub fn check_columns(&self, columns: &[String]) -> Result<()> {
        for (key, field) in self.fields() {
            if !columns.iter().any(|c| c == field) {
                let mut shown: Vec<&str> = columns.iter().map(String::as_str).take(20).collect();
                if columns.len() > 20 {
                    shown.push("...");
                }
                return Err(Error::Invalid(format!(
                    "{key}: field {field:?} is not in the source (its fields: {})",
                    shown.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Row formats.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = JobFormat)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated with a header row.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC (file or stream).
    Arrow,
    /// S3 only: each object is a document (`.txt`, `.md`, `.html`, `.json`).
    Documents,
}

impl Format {
    /// The format an object key's extension implies, for row formats.
    pub fn of_key(key: &str) -> Option<Format> {
        let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
        Some(match ext.as_str() {
            "jsonl" | "ndjson" => Format::Jsonl,
            "csv" => Format::Csv,
            "parquet" => Format::Parquet,
            "arrow" | "arrows" | "ipc" | "feather" => Format::Arrow,
            _ => return None,
        })
    }
}

/// Postgres sync modes.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = PostgresMode)]
#[serde(rename_all = "lowercase")]
pub enum PgMode {
    /// Load the table once (keyset pagination on the id column).
    #[default]
    Snapshot,
    /// Load, then poll for rows whose cursor column grew, until cancelled.
    Incremental,
    /// Load, then follow inserts, updates and deletes by logical replication, until cancelled.
    Cdc,
}

/// Where items come from.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, utoipa::ToSchema)]
#[schema(as = JobSource)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSpec {
    /// A file under one of the operator's `jobs.import_dirs`.
    File {
        /// Path relative to an import directory.
        path: String,
        /// Format (default: from the extension).
        #[serde(default)]
        format: Option<Format>,
    },
    /// Objects in an S3-compatible bucket.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        #[serde(default)]
        prefix: String,
        /// Endpoint URL for S3-compatible stores (default: AWS).
        #[serde(default)]
        endpoint: Option<String>,
        /// Region (default: from the environment, else `us-east-1`).
        #[serde(default)]
        region: Option<String>,
        /// `jsonl`, `csv`, `parquet`, `arrow` or `documents`.
        format: Format,
        /// Path-style addressing (default: on with a custom endpoint).
        #[serde(default)]
        path_style: Option<bool>,
    },
    /// A Postgres table or query.
    Postgres {
        /// Connection string, given inline (never shown back).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// Environment variable holding the connection string.
        #[serde(default)]
        url_env: Option<String>,
        /// File holding the connection string.
        #[serde(default)]
        url_file: Option<String>,
        /// Table (optionally `schema.table`).
        #[serde(default)]
        table: Option<String>,
        /// A query instead of a table (snapshot and incremental modes).
        #[serde(default)]
        query: Option<String>,
        /// `snapshot`, `incremental` or `cdc`.
        #[serde(default)]
        mode: PgMode,
        /// Incremental mode: a column that grows on every change (`updated_at`, a serial).
        #[serde(default)]
        cursor_column: Option<String>,
        /// CDC: publication name (created for the table when missing; default `naksha_{table}`).
        #[serde(default)]
        publication: Option<String>,
        /// CDC: replication slot (created when missing; default `naksha_{job id}`).
        #[serde(default)]
        slot: Option<String>,
        /// Incremental and CDC: seconds between polls (default 1).
        #[serde(default)]
        poll_secs: Option<f64>,
    },
}

/// A Postgres identifier (column, table, publication, slot) kept to a safe alphabet.
pub fn check_ident(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!("{what}: {s:?} is not a plain identifier (letters, digits and _, at most 63)")))
    }
}

impl JobSpec {
    /// Parse a JSON body, naming the problem.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let spec: JobSpec =
            serde_json::from_slice(bytes).map_err(|e| Error::Invalid(format!("malformed job body: {e}")))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Everything that can be checked without I/O.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        if self.collection.is_empty() {
            return bad("collection is required".into());
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return bad(format!("batch_size must be 1 to {MAX_BATCH_SIZE}"));
        }
        let m = &self.mapping;
        if m.id.is_empty() {
            return bad("mapping.id is required".into());
        }
        for (key, f) in m.fields() {
            if f.is_empty() {
                return bad(format!("{key}: a field name is empty"));
            }
        }
        if m.chunk && m.text.is_empty() {
            return bad("mapping.chunk needs mapping.text (the fields to cut into chunks)".into());
        }
        if m.chunk && m.vector.is_some() {
            return bad(
                "mapping.chunk and mapping.vector exclude each other (chunks are embedded by the collection)".into()
            );
        }
        if m.title.is_some() && !m.chunk {
            return bad("mapping.title applies to chunked documents only (set mapping.chunk)".into());
        }
        match &self.source {
            SourceSpec::File { path, format } => {
                if path.is_empty() {
                    return bad("source.path is required".into());
                }
                if *format == Some(Format::Documents) {
                    return bad("source.format documents is for S3 sources".into());
                }
            }
            SourceSpec::S3 { bucket, .. } => {
                if bucket.is_empty() {
                    return bad("source.bucket is required".into());
                }
            }
            SourceSpec::Postgres {
                url,
                url_env,
                url_file,
                table,
                query,
                mode,
                cursor_column,
                publication,
                slot,
                poll_secs,
            } => {
                let given = [url.is_some(), url_env.is_some(), url_file.is_some()].iter().filter(|b| **b).count();
                if given != 1 {
                    return bad("source: give exactly one of url, url_env and url_file".into());
                }
                match (table, query) {
                    (Some(t), None) => {
                        for part in t.split('.') {
                            check_ident("source.table", part)?;
                        }
                        if t.split('.').count() > 2 {
                            return bad(format!("source.table: {t:?} is not table or schema.table"));
                        }
                    }
                    (None, Some(q)) if !q.trim().is_empty() => {}
                    _ => return bad("source: give exactly one of table and query".into()),
                }
                for (what, f) in m.fields() {
                    check_ident(what, f)?;
                }
                if *mode == PgMode::Incremental {
                    match cursor_column {
                        Some(c) => check_ident("source.cursor_column", c)?,
                        None => return bad("source.cursor_column is required in incremental mode".into()),
                    }
                }
                if *mode == PgMode::Cdc && table.is_none() {
                    return bad("source.mode cdc follows a table: give source.table, not a query".into());
                }
                if let Some(p) = publication {
                    check_ident("source.publication", p)?;
                }
                if let Some(s) = slot {
                    check_ident("source.slot", s)?;
                }
                if poll_secs.is_some_and(|p| !(0.05..=3600.0).contains(&p)) {
                    return bad("source.poll_secs must be 0.05 to 3600".into());
                }
            }
        }
        Ok(())
    }

    /// Whether the job runs until cancelled (incremental and CDC sync).
    pub fn continuous(&self) -> bool {
        matches!(&self.source, SourceSpec::Postgres { mode: PgMode::Incremental | PgMode::Cdc, .. })
    }

    /// The body as shown back: an inline connection string is replaced by a marker.
    pub fn redacted(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let SourceSpec::Postgres { url: Some(_), .. } = &self.source {
            v["source"]["url"] = json!("(hidden)");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: Value) -> Result<JobSpec> {
        JobSpec::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn the_issue_example_parses_and_hides_its_url() {
        let s = spec(json!({"collection": "products",
            "source": {"type": "postgres", "url": "postgres://u:secret@h/db", "table": "products", "mode": "cdc",
                       "publication": "naksha_pub", "slot": "naksha_products"},
            "mapping": {"id": "id", "text": ["title", "body"], "payload": ["lang", "price"], "vector": null},
            "batch_size": 500}))
        .unwrap();
        assert!(s.continuous());
        let shown = s.redacted().to_string();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("(hidden)"));
    }

    #[test]
    fn bad_bodies_are_named() {
        let file = |m: Value| json!({"collection": "c", "source": {"type": "file", "path": "a.jsonl"}, "mapping": m});
        let e = spec(file(json!({"id": ""}))).unwrap_err().to_string();
        assert!(e.contains("mapping.id"), "{e}");
        let e = spec(file(json!({"id": "id", "chunk": true}))).unwrap_err().to_string();
        assert!(e.contains("mapping.chunk"), "{e}");
        let e = spec(file(json!({"id": "id", "bogus": 1}))).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let pg = |src: Value| json!({"collection": "c", "source": src, "mapping": {"id": "id"}});
        let e = spec(pg(json!({"type": "postgres", "table": "t"}))).unwrap_err().to_string();
        assert!(e.contains("url"), "{e}");
        let e = spec(pg(json!({"type": "postgres", "url_env": "U", "table": "t; drop"}))).unwrap_err().to_string();
        assert!(e.contains("source.table"), "{e}");
        let e = spec(pg(json!({"type": "postgres", "url_env": "U", "query": "select 1", "mode": "cdc"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cdc"), "{e}");
        let e = spec(pg(json!({"type": "postgres", "url_env": "U", "table": "t", "mode": "incremental"})))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cursor_column"), "{e}");
    }

    #[test]
    fn mapping_fields_are_checked_against_columns() {
        let m = Mapping { id: "id".into(), text: vec!["title".into(), "bdy".into()], ..Mapping::default() };
        let e = m.check_columns(&["id".into(), "title".into(), "body".into()]).unwrap_err().to_string();
        assert!(e.contains("mapping.text") && e.contains("\"bdy\""), "{e}");
        assert!(m.check_columns(&["id".into(), "title".into(), "bdy".into()]).is_ok());
    }
}
