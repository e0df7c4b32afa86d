//! The S3 source (aws-sdk-s3, any S3-compatible endpoint; credentials from
//! the SDK's chain: environment, shared files, web identity, container and
//! instance roles).
//!
//! Objects under the prefix are taken in key order. Row objects (JSONL, CSV,
//! Parquet, Arrow) stream to a temporary file and are read like local files;
//! document objects (`.txt`, `.md`, `.html` stripped to text, `.json`) become
//! chunked documents with the key as id. Every point carries the object's
//! metadata under the payload key `s3` (`key`, `etag`, `size`,
//! `last_modified`, `content_type`, `metadata`).
//!
//! Re-running the same body is incremental: [`SyncState`] remembers each
//! object's ETag for (tenant, collection, endpoint, bucket, prefix, format).
//! Unchanged objects are skipped, changed ones rewritten (then their stale
//! points removed by `s3.key`/`s3.etag`), removed ones deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use naksha_query::{Document, Filter};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;

use crate::job::{write_atomic, Checkpoint, FilePos, JobRecord};
use crate::spec::{Format, SourceSpec};
use crate::writer::Writer;
use crate::{Error, Result};

/// Largest document object read (documents are chunked whole).
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;

/// Turn an SDK error into a transient or permanent failure with a clear message.
fn classify<E, R>(what: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + HasStatus,
{
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::Transient(format!("s3 {what}: {}", DisplayErrorContext(&e)))
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status_code();
            let code = se.err().code().unwrap_or("");
            let msg = se.err().message().unwrap_or("");
            let text = match code {
                "" => format!("s3 {what}: HTTP {status} {msg}"),
                c => format!("s3 {what}: {c}: {msg} (HTTP {status})"),
            };
            let throttled = matches!(code, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout");
            if status >= 500 || status == 429 || throttled {
                Error::Transient(text)
            } else {
                Error::Failed(text)
            }
        }
        _ => Error::Failed(format!("s3 {what}: {}", DisplayErrorContext(&e))),
    }
}

/// The status code of a raw response.
pub trait HasStatus {
    /// HTTP status.
    fn status_code(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

/// An S3 client for an endpoint and region (TLS by rustls on ring).
pub async fn client(endpoint: Option<&str>, region: Option<&str>, path_style: Option<bool>) -> aws_sdk_s3::Client {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    let http =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    // The region: the body's, else the environment's, else us-east-1 (S3-compatible stores mostly ignore it).
    let region = region
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_REGION").ok())
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let region = aws_config::Region::new(region);
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http).region(region);
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    let conf = loader.load().await;
    let s3 =
        aws_sdk_s3::config::Builder::from(&conf).force_path_style(path_style.unwrap_or(endpoint.is_some())).build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// One listed object.
#[derive(Clone, Debug)]
struct Object {
    key: String,
    etag: String,
    size: u64,
    last_modified: Option<String>,
}

async fn list(client: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify(&format!("list s3://{bucket}/{prefix}"), e))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            if key.ends_with('/') {
                continue;
            }
            out.push(Object {
                key: key.to_owned(),
                etag: o.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                last_modified: o.last_modified().map(|t| t.to_string()),
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// What was loaded of each object, per source and collection.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SyncState {
    /// The source and target this state belongs to.
    pub identity: String,
    /// Owning tenant.
    pub tenant: String,
    /// Key → (ETag, job that loaded it).
    pub objects: BTreeMap<String, Loaded>,
}

/// One loaded object.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Loaded {
    /// ETag.
    pub etag: String,
    /// The job that loaded it.
    pub job: String,
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

impl SyncState {
    fn path(dir: &Path, tenant: &str, identity: &str) -> PathBuf {
        let rev: Vec<u8> = identity.bytes().rev().collect();
        dir.join(format!(
            "{}-{:08x}{:08x}.json",
            safe(tenant),
            crc32c::crc32c(identity.as_bytes()),
            crc32c::crc32c(&rev)
        ))
    }

    /// The state for `identity` (empty when none or when the file belongs to another identity).
    pub fn load(dir: &Path, tenant: &str, identity: &str) -> Result<Self> {
        let path = Self::path(dir, tenant, identity);
        match fs_err::read(&path) {
            Ok(bytes) => {
                let s: SyncState = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Failed(format!("sync state {} is damaged: {e}", path.display())))?;
                if s.identity == identity && s.tenant == tenant {
                    return Ok(s);
                }
                Ok(Self { identity: identity.into(), tenant: tenant.into(), objects: BTreeMap::new() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self { identity: identity.into(), tenant: tenant.into(), objects: BTreeMap::new() })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Save durably.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Failed(e.to_string()))?;
        write_atomic(&Self::path(dir, &self.tenant, &self.identity), &bytes)
    }

    /// Forget every state of a tenant.
    pub fn remove_tenant(dir: &Path, tenant: &str) -> Result<()> {
        let Ok(entries) = fs_err::read_dir(dir) else { return Ok(()) };
        let prefix = format!("{}-", safe(tenant));
        for e in entries {
            let path = e?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if !name.starts_with(&prefix) {
                continue;
            }
            let owned = fs_err::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<SyncState>(&b).ok())
                .is_some_and(|s| s.tenant == tenant);
            if owned {
                fs_err::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

fn key_filter(key: &str, except_etag: Option<&str>) -> Result<Filter> {
    let mut f = json!({"must": [{"key": "s3.key", "match": key}]});
    if let Some(etag) = except_etag {
        f["must_not"] = json!([{"key": "s3.etag", "match": etag}]);
    }
    serde_json::from_value(f).map_err(|e| Error::Failed(format!("filter: {e}")))
}

fn is_document(key: &str) -> bool {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    matches!(ext.as_str(), "txt" | "md" | "markdown" | "html" | "htm" | "json")
}

/// Run an S3 job.
pub async fn run(w: &mut Writer, sync_dir: &Path, rec: &JobRecord) -> Result<()> {
    let SourceSpec::S3 { bucket, prefix, endpoint, region, format, path_style } = &rec.spec.source else {
        return Err(Error::Failed("not an S3 source".into()));
    };
    let client = client(endpoint.as_deref(), region.as_deref(), *path_style).await;
    let identity = format!(
        "{}\n{}\n{}\n{bucket}\n{prefix}\n{format:?}",
        rec.tenant,
        rec.spec.collection,
        endpoint.as_deref().unwrap_or("aws")
    );
    let mut objects = list(&client, bucket, prefix).await?;
    if *format == Format::Documents {
        objects.retain(|o| is_document(&o.key));
    }
    let mut state = SyncState::load(sync_dir, &rec.tenant, &identity)?;
    w.totals(Some(objects.iter().map(|o| o.size).sum()), Some(objects.len() as u64));
    let resume = match w.checkpoint() {
        Checkpoint::S3 { key, etag, pos } => Some((key, etag, pos)),
        _ => None,
    };
    // Unchanged since an earlier job: skipped (objects this job already loaded count as written).
    let unchanged = objects
        .iter()
        .filter(|o| state.objects.get(&o.key).is_some_and(|l| l.etag == o.etag && l.job != rec.id))
        .count() as u64;
    w.job.update(|r| r.progress.skipped = unchanged);
    for o in &objects {
        w.check_stop()?;
        let old = state.objects.get(&o.key).cloned();
        if old.as_ref().is_some_and(|l| l.etag == o.etag) {
            continue;
        }
        let pos = match &resume {
            Some((k, e, p)) if *k == o.key && *e == o.etag => *p,
            _ => FilePos::default(),
        };
        let get = client.get_object().bucket(bucket).key(&o.key).send().await;
        let got = get.map_err(|e| classify(&format!("get s3://{bucket}/{}", o.key), e))?;
        let mut meta = json!({"key": o.key, "etag": o.etag, "size": o.size});
        if let Some(t) = &o.last_modified {
            meta["last_modified"] = json!(t);
        }
        if let Some(t) = got.content_type() {
            meta["content_type"] = json!(t);
        }
        if let Some(m) = got.metadata().filter(|m| !m.is_empty()) {
            meta["metadata"] = json!(m);
        }
        let extra: Arc<Map<String, Value>> = Arc::new(Map::from_iter([("s3".to_owned(), meta)]));
        let cp = |pos: FilePos| Checkpoint::S3 { key: o.key.clone(), etag: o.etag.clone(), pos };
        let tmp = sync_dir.parent().unwrap_or(sync_dir).join("tmp").join(format!(
            "{}-{:08x}.part",
            rec.id,
            crc32c::crc32c(o.key.as_bytes())
        ));
        let bytes = download(got.body, &tmp, (*format == Format::Documents).then_some(MAX_DOCUMENT_BYTES)).await;
        let bytes = bytes.map_err(|e| match e {
            Error::Invalid(m) => Error::Failed(m),
            e => e,
        });
        let result = match bytes {
            Err(Error::Failed(m)) if *format == Format::Documents => {
                // One unreadable document is an item error, not the end of the job.
                w.write_documents(vec![(o.key.clone(), Err(m))], 0, cp(FilePos::default())).await
            }
            Err(e) => Err(e),
            Ok(size) if *format == Format::Documents => {
                let doc = fs_err::read(&tmp).map_err(Error::from).map(|b| document(&o.key, &b, &extra));
                let _ = fs_err::remove_file(&tmp);
                let done = FilePos { rows: 1, byte: size, line: 0 };
                w.write_documents(vec![(o.key.clone(), doc?)], size, cp(done)).await
            }
            Ok(_) => {
                let fmt = match *format {
                    Format::Jsonl | Format::Csv | Format::Parquet | Format::Arrow => *format,
                    Format::Documents => unreachable!("handled above"),
                };
                let mapping = rec.spec.mapping.clone();
                let path = tmp.clone();
                let reader = crate::writer::blocking(move || crate::file::open(&path, fmt, &mapping, pos)).await;
                let r = match reader {
                    Ok(reader) => crate::file::stream(w, reader, Some(extra.clone()), cp).await,
                    Err(e) => Err(e),
                };
                let _ = fs_err::remove_file(&tmp);
                r
            }
        };
        result?;
        if old.is_some() {
            // A changed object: its rows from the old version go.
            w.delete_where(key_filter(&o.key, Some(&o.etag))?, cp(FilePos::default())).await?;
        }
        state.objects.insert(o.key.clone(), Loaded { etag: o.etag.clone(), job: rec.id.clone() });
        state.save(sync_dir)?;
    }
    let listed: std::collections::HashSet<&str> = objects.iter().map(|o| o.key.as_str()).collect();
    let removed: Vec<String> = state.objects.keys().filter(|k| !listed.contains(k.as_str())).cloned().collect();
    for key in removed {
        w.delete_where(key_filter(&key, None)?, w.checkpoint()).await?;
        state.objects.remove(&key);
        state.save(sync_dir)?;
    }
    Ok(())
}

/// Stream an object body to `path`; returns its size. `limit`: refuse larger bodies.
async fn download(mut body: aws_sdk_s3::primitives::ByteStream, path: &Path, limit: Option<u64>) -> Result<u64> {
    let mut f = tokio::fs::File::create(path).await.map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    let mut n = 0u64;
    while let Some(chunk) = body.try_next().await.map_err(|e| Error::Transient(format!("s3 read: {e}")))? {
        n += chunk.len() as u64;
        if limit.is_some_and(|l| n > l) {
            drop(f);
            let _ = tokio::fs::remove_file(path).await;
            return Err(Error::Failed(format!("document larger than {} bytes", limit.unwrap_or(0))));
        }
        f.write_all(&chunk).await.map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    }
    f.flush().await.map_err(|e| Error::Failed(e.to_string()))?;
    Ok(n)
}

/// An object as a document: text (HTML stripped, JSON's `text` field), title, metadata.
fn document(key: &str, bytes: &[u8], extra: &Map<String, Value>) -> std::result::Result<Document, String> {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let raw = String::from_utf8_lossy(bytes);
    let mut payload = extra.clone();
    let (title, text) = match ext.as_str() {
        "html" | "htm" => html_to_text(&raw),
        "json" => {
            let v: Value = serde_json::from_str(&raw).map_err(|e| format!("not JSON: {e}"))?;
            match v {
                Value::Object(mut m) => {
                    let text = m.remove("text").and_then(|t| t.as_str().map(str::to_owned));
                    let title = m.remove("title").and_then(|t| t.as_str().map(str::to_owned));
                    let text = text.ok_or("a JSON document needs a string field \"text\"")?;
                    payload.extend(m);
                    (title, text)
                }
                _ => return Err("a JSON document must be an object with a \"text\" field".into()),
            }
        }
        _ => (None, raw.into_owned()),
    };
    if text.trim().is_empty() {
        return Err("the document has no text".into());
    }
    Ok(Document { id: key.to_owned(), text, title, payload: Value::Object(payload) })
}

/// Visible text of an HTML page (scripts, styles and tags dropped, entities
/// decoded, block elements on their own lines) and its `<title>`.
pub fn html_to_text(html: &str) -> (Option<String>, String) {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut title = None;
    let mut i = 0;
    let b = html.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            let rest = &lower[i..];
            let skip_to = |tag: &str| rest.find(tag).map(|e| i + e + tag.len()).unwrap_or(b.len());
            if rest.starts_with("<script") {
                i = skip_to("</script>");
                continue;
            }
            if rest.starts_with("<style") {
                i = skip_to("</style>");
                continue;
            }
            if rest.starts_with("<!--") {
                i = skip_to("-->");
                continue;
            }
            if rest.starts_with("<title") {
                let open_end = rest.find('>').map(|e| i + e + 1).unwrap_or(b.len());
                let close = lower[open_end..].find("</title>").map(|e| open_end + e).unwrap_or(b.len());
                title = Some(decode_entities(html[open_end..close].trim()));
                i = (close + "</title>".len()).min(b.len());
                continue;
            }
            let end = rest.find('>').map(|e| i + e + 1).unwrap_or(b.len());
            let name: String =
                lower[i + 1..end].trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            let block = matches!(
                name.as_str(),
                "p" | "div"
                    | "br"
                    | "li"
                    | "ul"
                    | "ol"
                    | "h1"
                    | "h2"
                    | "h3"
                    | "h4"
                    | "h5"
                    | "h6"
                    | "tr"
                    | "table"
                    | "section"
                    | "article"
                    | "pre"
                    | "blockquote"
                    | "header"
                    | "footer"
            );
            out.push(if block { '\n' } else { ' ' });
            i = end;
            continue;
        }
        let next = lower[i..].find('<').map(|e| i + e).unwrap_or(b.len());
        out.push_str(&decode_entities(&html[i..next]));
        i = next;
    }
    // Collapse runs of spaces; keep paragraph breaks.
    let lines: Vec<String> =
        out.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|l| !l.is_empty()).collect();
    (title.filter(|t| !t.is_empty()), lines.join("\n"))
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let Some(end) = end else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            e if e.starts_with("#x") || e.starts_with("#X") => {
                u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32)
            }
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        let (title, text) = html_to_text(
            "<html><head><title>Fish &amp; Chips</title><style>p{}</style><script>x<y</script></head>\
             <body><h1>Menu</h1><p>Cod&nbsp;&#8212; fried</p><!-- no --><p>Peas <b>mushy</b></p></body></html>",
        );
        assert_eq!(title.as_deref(), Some("Fish & Chips"));
        assert_eq!(text, "Menu\nCod \u{2014} fried\nPeas mushy");
    }

    #[test]
    fn json_documents_need_text() {
        let extra = Map::new();
        let d = document("a.json", br#"{"text": "hello", "title": "T", "lang": "en"}"#, &extra).unwrap();
        assert_eq!((d.text.as_str(), d.title.as_deref()), ("hello", Some("T")));
        assert_eq!(d.payload, json!({"lang": "en"}));
        assert!(document("b.json", b"[1]", &extra).is_err());
        assert!(document("c.txt", b"  ", &extra).is_err());
    }

    #[test]
    fn sync_state_is_per_identity() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SyncState::load(dir.path(), "t1", "a").unwrap();
        s.objects.insert("k".into(), Loaded { etag: "e".into(), job: "j".into() });
        s.save(dir.path()).unwrap();
        assert_eq!(SyncState::load(dir.path(), "t1", "a").unwrap().objects.len(), 1);
        assert!(SyncState::load(dir.path(), "t1", "b").unwrap().objects.is_empty());
        SyncState::remove_tenant(dir.path(), "t1").unwrap();
        assert!(SyncState::load(dir.path(), "t1", "a").unwrap().objects.is_empty());
    }
}
