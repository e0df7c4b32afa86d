//! The operator CLI: a small blocking HTTP client for a running server.
#![allow(clippy::print_stdout)] // a CLI: results go to stdout

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

/// A client for one server.
#[derive(Debug)]
pub struct Client {
    base: String,
    api_key: Option<String>,
    tenant: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:6480`).
    pub fn new(base: &str, api_key: Option<String>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Self { base: base.trim_end_matches('/').to_owned(), api_key, tenant: None, agent }
    }

    /// The same client addressing `tenant` with `X-Naksha-Tenant` (admins).
    pub fn with_tenant(mut self, tenant: Option<String>) -> Self {
        self.tenant = tenant;
        self
    }

    /// Send a request; returns the status and the parsed JSON body.
    pub fn request(&self, method: &str, path: &str, body: Option<(&str, String)>) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let headers = self.headers();
        let res = match (method, body) {
            ("GET" | "DELETE", _) => {
                let mut r = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                for (k, v) in &headers {
                    r = r.header(*k, v);
                }
                r.call()
            }
            (m, body) => {
                let mut r = match m {
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.post(&url),
                };
                for (k, v) in &headers {
                    r = r.header(*k, v);
                }
                let (ct, data) = body.unwrap_or(("application/json", "{}".to_owned()));
                r.header("Content-Type", ct).send(data)
            }
        }
        .with_context(|| format!("cannot reach {url}"))?;
        let status = res.status().as_u16();
        let text = res.into_body().read_to_string()?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(k) = &self.api_key {
            h.push(("Authorization", format!("Bearer {k}")));
        }
        if let Some(t) = &self.tenant {
            h.push(("X-Naksha-Tenant", t.clone()));
        }
        h
    }

    /// GET `path` into the file `dest` with a progress bar; returns the bytes
    /// and the SHA-256 the server sent (`X-Naksha-Sha256`), checked against the bytes.
    pub fn download(&self, path: &str, dest: &Path) -> Result<u64> {
        let url = format!("{}{path}", self.base);
        let mut r = self.agent.get(&url);
        for (k, v) in self.headers() {
            r = r.header(k, v);
        }
        let res = r.call().with_context(|| format!("cannot reach {url}"))?;
        let status = res.status().as_u16();
        if status >= 400 {
            let v: Value = serde_json::from_str(&res.into_body().read_to_string()?).unwrap_or(Value::Null);
            bail!("{status}: {}", v["error"]["message"].as_str().unwrap_or("error"));
        }
        let want = res.headers().get("x-naksha-sha256").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let total = res.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
        let bar = bytes_bar(total);
        let mut reader = bar.wrap_read(res.into_body().into_reader());
        let partial = dest.with_extension("partial");
        let file = std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(&partial)?);
        let mut out = naksha_query::snapshot::Hashing::new(file);
        std::io::copy(&mut reader, &mut out)?;
        let (file, n, got) = out.finish();
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        bar.finish();
        if let Some(want) = want.filter(|w| *w != got) {
            let _ = fs_err::remove_file(&partial);
            bail!("the download's SHA-256 is {got}, the server sent {want}: damaged in transit");
        }
        fs_err::rename(&partial, dest)?;
        eprintln!("{n} bytes, sha256 {got}");
        Ok(n)
    }

    /// POST the file `src` as `application/octet-stream` with a progress bar.
    pub fn upload(&self, path: &str, src: &Path) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let file = fs_err::File::open(src)?;
        let bar = bytes_bar(Some(file.metadata()?.len()));
        let mut reader = bar.wrap_read(std::io::BufReader::with_capacity(1 << 20, file));
        let mut r = self.agent.post(&url);
        for (k, v) in self.headers() {
            r = r.header(k, v);
        }
        let res = r
            .header("Content-Type", "application/octet-stream")
            .send(ureq::SendBody::from_reader(&mut reader))
            .with_context(|| format!("cannot reach {url}"))?;
        bar.finish();
        let status = res.status().as_u16();
        let v: Value = serde_json::from_str(&res.into_body().read_to_string()?).unwrap_or(Value::Null);
        if status >= 400 {
            bail!("{status}: {}", v["error"]["message"].as_str().unwrap_or("error"));
        }
        Ok(v)
    }

    fn ok(&self, method: &str, path: &str, body: Option<(&str, String)>) -> Result<Value> {
        let (status, v) = self.request(method, path, body)?;
        if status >= 400 {
            let msg = v["error"]["message"].as_str().map_or_else(|| v.to_string(), str::to_owned);
            bail!("{status}: {msg}");
        }
        Ok(v)
    }
}

/// `naksha collections ...`.
#[derive(Debug, clap::Subcommand)]
pub enum CollectionsAction {
    /// List collections and their point counts.
    List,
    /// Create a collection.
    Create {
        /// Name.
        name: String,
        /// Vector dimension (default with --embed: the model's).
        #[arg(long)]
        dim: Option<usize>,
        /// cosine | dot | l2.
        #[arg(long, default_value = "cosine")]
        metric: String,
        /// none | int8.
        #[arg(long, default_value = "none")]
        quantization: String,
        /// Payload index as KEY=TYPE (keyword, integer, float, bool); repeatable.
        #[arg(long = "index")]
        indexes: Vec<String>,
        /// Embedding model that fills vectors from text fields (see `naksha models list`).
        #[arg(long)]
        embed: Option<String>,
        /// Text fields the model embeds, comma-separated.
        #[arg(long, default_value = "text", value_delimiter = ',')]
        fields: Vec<String>,
        /// Text fields indexed for BM25 (text and hybrid search), comma-separated.
        #[arg(long, value_delimiter = ',')]
        text_fields: Vec<String>,
    },
    /// Show a collection's configuration and sizes.
    Info {
        /// Name.
        name: String,
    },
    /// Delete a collection and its data.
    Delete {
        /// Name.
        name: String,
    },
}

/// What `naksha query` searches with.
#[derive(Debug)]
pub enum QueryInput {
    /// A JSON array.
    Vector(String),
    /// A text: BM25 terms and/or embedded by the collection's model, per the mode.
    Text(String),
}

/// Options of `naksha query`.
#[derive(Debug, Default)]
pub struct QueryOptions {
    /// Results.
    pub limit: usize,
    /// Filter as JSON.
    pub filter: Option<String>,
    /// vector, text or hybrid (default: the server's choice).
    pub mode: Option<String>,
    /// Ask for highlighted fragments.
    pub highlight: bool,
}

/// `naksha models list`: the models installed in a folder (loaded, so a broken
/// one is reported here as the server would at start-up).
pub fn models_list(dir: &Path) -> Result<()> {
    let models = naksha_query::embed::Models::open(dir, naksha_query::embed::DeviceKind::Cpu)
        .with_context(|| format!("models folder {}", dir.display()))?;
    let list = models.list();
    if list.is_empty() {
        println!("no models in {} (install one: scripts/install-model.sh {})", dir.display(), dir.display());
    }
    for m in list {
        println!(
            "{}\tdim={}\tmax_tokens={}\tpooling={:?}\tnormalize={}",
            m.name, m.dim, m.max_tokens, m.pooling, m.normalize
        );
    }
    Ok(())
}

/// Run a collections subcommand.
pub fn collections(client: &Client, action: CollectionsAction) -> Result<()> {
    let v = match action {
        CollectionsAction::List => client.ok("GET", "/v1/collections", None)?,
        CollectionsAction::Create { name, dim, metric, quantization, indexes, embed, fields, text_fields } => {
            let mut payload_index = serde_json::Map::new();
            for i in indexes {
                let (k, t) = i.split_once('=').context("--index takes KEY=TYPE")?;
                payload_index.insert(k.to_owned(), json!(t));
            }
            let mut vectors = json!({"metric": metric, "quantization": quantization});
            if let Some(d) = dim {
                vectors["dim"] = json!(d);
            }
            let mut body = json!({"vectors": vectors, "payload_index": payload_index});
            if let Some(model) = embed {
                body["embed"] = json!({"model": model, "fields": fields});
            }
            if !text_fields.is_empty() {
                body["text_fields"] = json!(text_fields);
            }
            client.ok("PUT", &format!("/v1/collections/{name}"), Some(("application/json", body.to_string())))?
        }
        CollectionsAction::Info { name } => client.ok("GET", &format!("/v1/collections/{name}"), None)?,
        CollectionsAction::Delete { name } => client.ok("DELETE", &format!("/v1/collections/{name}"), None)?,
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `naksha import FILE --collection C`: NDJSON batches with a progress bar and a summary.
pub fn import(client: &Client, file: &Path, collection: &str, batch: usize) -> Result<()> {
    let f = fs_err::File::open(file)?;
    let total = f.metadata()?.len();
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let (mut sent, mut failed, mut lines) = (0usize, 0usize, Vec::new());
    let path = format!("/v1/collections/{collection}/points");
    let flush = |lines: &mut Vec<String>, sent: &mut usize, failed: &mut usize| -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let n = lines.len();
        let (status, v) = client.request("POST", &path, Some(("application/x-ndjson", lines.join("\n"))))?;
        if status >= 400 {
            *failed += n;
            bar.println(format!("batch of {n} rejected ({status}): {}", v["error"]["message"].as_str().unwrap_or("")));
        } else {
            *sent += n;
        }
        lines.clear();
        Ok(())
    };
    for line in BufReader::new(f).lines() {
        let line = line?;
        bar.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        lines.push(line);
        if lines.len() >= batch.max(1) {
            flush(&mut lines, &mut sent, &mut failed)?;
            bar.set_message(format!("{sent} points"));
        }
    }
    flush(&mut lines, &mut sent, &mut failed)?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!("imported {sent} points in {secs:.2} s ({:.0} points/s), {failed} errors", sent as f64 / secs.max(1e-9));
    if failed > 0 {
        bail!("{failed} points were rejected");
    }
    Ok(())
}

/// POSTs `body` (with `--filter`, when given, as its `filter`) to a collection's `endpoint`.
fn post_to(client: &Client, collection: &str, endpoint: &str, mut body: Value, filter: Option<&str>) -> Result<Value> {
    if let Some(f) = filter {
        body["filter"] = serde_json::from_str(f).context("--filter must be JSON")?;
    }
    client.ok("POST", &format!("/v1/collections/{collection}/{endpoint}"), Some(("application/json", body.to_string())))
}

/// `naksha query`.
pub fn query(client: &Client, collection: &str, what: QueryInput, opts: &QueryOptions) -> Result<()> {
    let mut body = json!({"limit": opts.limit, "highlight": opts.highlight});
    if let Some(m) = &opts.mode {
        body["mode"] = json!(m);
    }
    match what {
        QueryInput::Vector(v) => body["vector"] = serde_json::from_str(&v).context("--vector must be a JSON array")?,
        QueryInput::Text(t) => {
            body["text"] = json!(t);
            body["with_text"] = json!(true);
        }
    }
    let v = post_to(client, collection, "query", body, opts.filter.as_deref())?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `naksha rag`: the answer, then one line per citation.
pub fn rag(client: &Client, collection: &str, body: Value, filter: Option<&str>) -> Result<()> {
    let v = post_to(client, collection, "rag", body, filter)?;
    let answer = v["answer"].as_str().unwrap_or_default();
    println!("{}", if answer.is_empty() { "(nothing in the collection answers this)" } else { answer });
    for (n, c) in v["citations"].as_array().into_iter().flatten().enumerate() {
        println!(
            "[{}] {} ({} characters {}-{}): {}",
            n + 1,
            c["id"],
            c["field"].as_str().unwrap_or_default(),
            c["start"],
            c["end"],
            c["text"].as_str().unwrap_or_default()
        );
    }
    println!(
        "({} passages, {} context tokens, {:.0} ms)",
        v["contexts"],
        v["context_tokens"],
        v["took_ms"].as_f64().unwrap_or_default()
    );
    Ok(())
}

/// `naksha tenants ...` (admin key).
#[derive(Debug, clap::Subcommand)]
pub enum TenantsAction {
    /// Create a tenant.
    Create {
        /// Name.
        name: String,
        /// Limits; unset: unlimited.
        #[command(flatten)]
        quotas: QuotaArgs,
    },
    /// List tenants.
    List,
    /// A tenant's quotas and usage.
    Info {
        /// Name.
        name: String,
    },
    /// Change a tenant's quotas (the ones given).
    Update {
        /// Name.
        name: String,
        /// New limits.
        #[command(flatten)]
        quotas: QuotaArgs,
    },
    /// Delete a tenant with its collections and keys.
    Delete {
        /// Name.
        name: String,
    },
}

/// Quota flags.
#[derive(Debug, clap::Args)]
pub struct QuotaArgs {
    /// Collections at most.
    #[arg(long)]
    max_collections: Option<u64>,
    /// Points at most.
    #[arg(long)]
    max_points: Option<u64>,
    /// Disk bytes at most.
    #[arg(long)]
    max_disk_bytes: Option<u64>,
    /// Requests per second.
    #[arg(long)]
    requests_per_second: Option<f64>,
    /// Embedding tokens per minute.
    #[arg(long)]
    embed_tokens_per_minute: Option<u64>,
}

impl QuotaArgs {
    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("max_collections", self.max_collections.map(Value::from));
        put("max_points", self.max_points.map(Value::from));
        put("max_disk_bytes", self.max_disk_bytes.map(Value::from));
        put("requests_per_second", self.requests_per_second.map(Value::from));
        put("embed_tokens_per_minute", self.embed_tokens_per_minute.map(Value::from));
        Value::Object(m)
    }
}

/// `naksha keys ...` (admin key, or the tenant's tenant_admin key).
#[derive(Debug, clap::Subcommand)]
pub enum KeysAction {
    /// Make a key; its secret is printed once.
    Create {
        /// Tenant (`default` for the built-in one).
        #[arg(value_name = "TENANT")]
        of: String,
        /// admin | tenant_admin | writer | reader.
        #[arg(long, default_value = "reader")]
        role: String,
        /// Limit it to these collections (comma-separated).
        #[arg(long, value_delimiter = ',')]
        collections: Vec<String>,
        /// RFC 3339 time after which it stops working.
        #[arg(long)]
        expires_at: Option<String>,
        /// Its own requests-per-second limit.
        #[arg(long)]
        requests_per_second: Option<f64>,
    },
    /// List a tenant's keys (never their secrets).
    List {
        /// Tenant.
        #[arg(value_name = "TENANT")]
        of: String,
    },
    /// Revoke a key at once.
    Revoke {
        /// Tenant.
        #[arg(value_name = "TENANT")]
        of: String,
        /// Key id.
        id: String,
    },
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Run a `tenants` command.
pub fn tenants(client: &Client, action: TenantsAction) -> Result<()> {
    let v = match action {
        TenantsAction::Create { name, quotas } => {
            let body = json!({"name": name, "quotas": quotas.to_json()});
            client.ok("POST", "/v1/tenants", Some(("application/json", body.to_string())))?
        }
        TenantsAction::List => {
            let v = client.ok("GET", "/v1/tenants", None)?;
            for t in v["tenants"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}",
                    t["name"].as_str().unwrap_or(""),
                    t["created_at"].as_str().unwrap_or(""),
                    t["quotas"]
                );
            }
            return Ok(());
        }
        TenantsAction::Info { name } => client.ok("GET", &format!("/v1/tenants/{name}"), None)?,
        TenantsAction::Update { name, quotas } => {
            let body = json!({"quotas": quotas.to_json()});
            client.ok("PATCH", &format!("/v1/tenants/{name}"), Some(("application/json", body.to_string())))?
        }
        TenantsAction::Delete { name } => client.ok("DELETE", &format!("/v1/tenants/{name}"), None)?,
    };
    print_json(&v)
}

/// Run a `keys` command.
pub fn keys(client: &Client, action: KeysAction) -> Result<()> {
    let v = match action {
        KeysAction::Create { of: tenant, role, collections, expires_at, requests_per_second } => {
            let collections = (!collections.is_empty()).then_some(collections);
            let body = json!({"role": role, "collections": collections, "expires_at": expires_at,
                "requests_per_second": requests_per_second});
            let v = client.ok(
                "POST",
                &format!("/v1/tenants/{tenant}/keys"),
                Some(("application/json", body.to_string())),
            )?;
            eprintln!("the key is shown only now: store it in a secret manager");
            v
        }
        KeysAction::List { of: tenant } => {
            let v = client.ok("GET", &format!("/v1/tenants/{tenant}/keys"), None)?;
            for k in v["keys"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\tcollections={}\tcreated={}\tlast_used={}\texpires={}",
                    k["id"].as_str().unwrap_or(""),
                    k["prefix"].as_str().unwrap_or(""),
                    k["role"].as_str().unwrap_or(""),
                    k["collections"],
                    k["created_at"].as_str().unwrap_or(""),
                    k["last_used"].as_str().unwrap_or("-"),
                    k["expires_at"].as_str().unwrap_or("never"),
                );
            }
            return Ok(());
        }
        KeysAction::Revoke { of: tenant, id } => {
            client.ok("DELETE", &format!("/v1/tenants/{tenant}/keys/{id}"), None)?
        }
    };
    print_json(&v)
}

/// `naksha jobs ...`.
#[derive(Debug, clap::Subcommand)]
pub enum JobsAction {
    /// Start a job from a YAML or JSON file, or inline JSON with --json.
    Create {
        /// The job body (YAML or JSON).
        #[arg(value_name = "FILE.yaml", required_unless_present = "json")]
        file: Option<std::path::PathBuf>,
        /// The job body as inline JSON.
        #[arg(long, conflicts_with = "file")]
        json: Option<String>,
        /// Follow it with a progress bar until it ends.
        #[arg(long)]
        watch: bool,
    },
    /// List the tenant's jobs.
    List,
    /// Show one job.
    Get {
        /// Job id.
        id: String,
    },
    /// Cancel a queued or running job.
    Cancel {
        /// Job id.
        id: String,
    },
    /// Follow a job with a live progress bar until it ends (sync jobs: until Ctrl-C).
    Watch {
        /// Job id.
        id: String,
    },
}

/// A job body from YAML or JSON text, as JSON.
pub fn job_body(text: &str) -> Result<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_norway::from_str::<Value>(text).context("the job body is neither JSON nor YAML")
}

/// Run a `jobs` command.
pub fn jobs(client: &Client, action: JobsAction) -> Result<()> {
    let v = match action {
        JobsAction::Create { file, json, watch: follow } => {
            let text = match (file, json) {
                (Some(f), _) => fs_err::read_to_string(f)?,
                (None, Some(j)) => j,
                (None, None) => bail!("give FILE.yaml or --json"),
            };
            let body = job_body(&text)?;
            let v = client.ok("POST", "/v1/jobs", Some(("application/json", body.to_string())))?;
            if follow {
                eprintln!("job {}", v["id"].as_str().unwrap_or(""));
                return watch(client, v["id"].as_str().unwrap_or_default());
            }
            v
        }
        JobsAction::List => {
            let v = client.ok("GET", "/v1/jobs", None)?;
            for j in v["jobs"].as_array().into_iter().flatten() {
                let p = &j["progress"];
                println!(
                    "{}\t{}\t{}\t{}\tread={}\twritten={}\tfailed={}",
                    j["id"].as_str().unwrap_or(""),
                    j["status"].as_str().unwrap_or(""),
                    j["source"].as_str().unwrap_or(""),
                    j["collection"].as_str().unwrap_or(""),
                    p["read"],
                    p["written"],
                    p["failed"]
                );
            }
            return Ok(());
        }
        JobsAction::Get { id } => client.ok("GET", &format!("/v1/jobs/{id}"), None)?,
        JobsAction::Cancel { id } => client.ok("DELETE", &format!("/v1/jobs/{id}"), None)?,
        JobsAction::Watch { id } => return watch(client, &id),
    };
    print_json(&v)
}

/// Poll a job, drawing its progress (a bar when the total is known, a spinner otherwise), until it ends.
fn watch(client: &Client, id: &str) -> Result<()> {
    let bar = ProgressBar::new(0);
    let mut sized = false;
    loop {
        let v = client.ok("GET", &format!("/v1/jobs/{id}"), None)?;
        let p = &v["progress"];
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        let (total, done) = match (p["total_bytes"].as_u64(), p["total_items"].as_u64()) {
            (Some(t), _) if n("bytes") > 0 => (Some(t), n("bytes")),
            (_, Some(t)) => (Some(t), n("read")),
            _ => (None, n("read")),
        };
        if let (Some(t), false) = (total, sized) {
            bar.set_length(t);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            sized = true;
        } else if total.is_none() && !sized {
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
        }
        bar.set_position(done);
        let lag = match v["lag"]["seconds"].as_f64() {
            Some(s) => format!(" lag={s:.1}s"),
            None => String::new(),
        };
        bar.set_message(format!(
            "{} read={} written={} failed={} {:.0} points/s{lag}",
            v["status"].as_str().unwrap_or(""),
            n("read"),
            n("written"),
            n("failed"),
            p["rate"].as_f64().unwrap_or(0.0)
        ));
        bar.tick();
        let status = v["status"].as_str().unwrap_or("");
        if matches!(status, "succeeded" | "failed" | "cancelled") {
            bar.finish();
            if let Some(e) = v["error"].as_str() {
                eprintln!("error: {e}");
            }
            for e in v["errors"].as_array().into_iter().flatten().take(5) {
                eprintln!("item {}: {}", e["item"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""));
            }
            if status != "succeeded" {
                bail!("job {id} {status}");
            }
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A progress bar over bytes (a spinner when the total is unknown).
fn bytes_bar(total: Option<u64>) -> ProgressBar {
    match total {
        Some(t) => {
            let bar = ProgressBar::new(t);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} (eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => ProgressBar::new_spinner(),
    }
}

/// `naksha snapshots ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SnapshotsAction {
    /// Snapshot a collection online (or every collection with --all).
    Create {
        /// Collection.
        #[arg(required_unless_present = "all")]
        collection: Option<String>,
        /// Every collection of the tenant.
        #[arg(long, conflicts_with = "collection")]
        all: bool,
        /// Also upload it to the server's [backup] bucket.
        #[arg(long)]
        s3: bool,
    },
    /// List snapshots kept on the server (of one collection, or all), or with --s3 the bucket's.
    List {
        /// Collection.
        collection: Option<String>,
        /// List the backups in the [backup] bucket instead.
        #[arg(long, conflicts_with = "collection")]
        s3: bool,
    },
    /// Download a snapshot's archive (checked against its SHA-256).
    Download {
        /// Collection.
        collection: String,
        /// Snapshot id.
        id: String,
        /// Where to write it (default: COLLECTION-ID.tar).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Restore into a new collection: a snapshot kept on the server (COLLECTION ID),
    /// a local archive uploaded (--file), an object of the backup bucket (--s3-key),
    /// or an archive on the server under backup.restore_dirs (--path).
    Restore {
        /// Collection of a snapshot kept on the server.
        collection: Option<String>,
        /// Its id.
        id: Option<String>,
        /// Name of the new collection.
        #[arg(long)]
        target: String,
        /// Upload this archive.
        #[arg(long, conflicts_with_all = ["collection", "s3_key", "path"])]
        file: Option<std::path::PathBuf>,
        /// Restore this key of the backup bucket.
        #[arg(long, conflicts_with_all = ["collection", "path"])]
        s3_key: Option<String>,
        /// Restore this path under the server's backup.restore_dirs.
        #[arg(long, conflicts_with = "collection")]
        path: Option<String>,
    },
    /// Delete a snapshot kept on the server.
    Delete {
        /// Collection.
        collection: String,
        /// Snapshot id.
        id: String,
    },
}

fn print_snapshot_rows(v: &Value) {
    for s in v["snapshots"].as_array().into_iter().flatten() {
        match s["key"].as_str() {
            Some(key) => println!("{key}\t{}\t{}", s["size_bytes"], s["last_modified"].as_str().unwrap_or("")),
            None => println!(
                "{}\t{}\tseq={}\tpoints={}\t{} bytes\t{}",
                s["collection"].as_str().unwrap_or(""),
                s["id"].as_str().unwrap_or(""),
                s["seq"],
                s["points"],
                s["size_bytes"],
                s["created_at"].as_str().unwrap_or("")
            ),
        }
    }
}

/// Run a `snapshots` command.
pub fn snapshots(client: &Client, action: SnapshotsAction) -> Result<()> {
    let json = |v: Value| Some(("application/json", v.to_string()));
    let v = match action {
        SnapshotsAction::Create { collection, all, s3 } => {
            let body = if s3 { json!({"upload": "s3"}) } else { json!({}) };
            let path = match (collection, all) {
                (_, true) => "/v1/snapshots".to_owned(),
                (Some(c), false) => format!("/v1/collections/{c}/snapshots"),
                (None, false) => bail!("give a COLLECTION or --all"),
            };
            let spinner = ProgressBar::new_spinner().with_message("snapshotting");
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            let v = client.ok("POST", &path, json(body));
            spinner.finish_and_clear();
            v?
        }
        SnapshotsAction::List { collection, s3 } => {
            let path = match (collection, s3) {
                (_, true) => "/v1/snapshots/s3".to_owned(),
                (Some(c), false) => format!("/v1/collections/{c}/snapshots"),
                (None, false) => "/v1/snapshots".to_owned(),
            };
            print_snapshot_rows(&client.ok("GET", &path, None)?);
            return Ok(());
        }
        SnapshotsAction::Download { collection, id, output } => {
            let dest = output.unwrap_or_else(|| format!("{collection}-{id}.tar").into());
            client.download(&format!("/v1/collections/{collection}/snapshots/{id}"), &dest)?;
            println!("{}", dest.display());
            return Ok(());
        }
        SnapshotsAction::Restore { collection, id, target, file, s3_key, path } => {
            match (collection, id, file, s3_key, path) {
                (_, _, Some(f), None, None) => client.upload(&format!("/v1/snapshots/restore?target={target}"), &f)?,
                (None, None, None, Some(key), None) => {
                    client.ok("POST", "/v1/snapshots/restore", json(json!({"s3": {"key": key}, "target": target})))?
                }
                (None, None, None, None, Some(p)) => {
                    client.ok("POST", "/v1/snapshots/restore", json(json!({"path": p, "target": target})))?
                }
                (Some(c), Some(id), None, None, None) => client.ok(
                    "POST",
                    &format!("/v1/collections/{c}/snapshots/{id}/restore"),
                    json(json!({"target": target})),
                )?,
                _ => bail!("name one source: COLLECTION ID, --file, --s3-key or --path"),
            }
        }
        SnapshotsAction::Delete { collection, id } => {
            client.ok("DELETE", &format!("/v1/collections/{collection}/snapshots/{id}"), None)?
        }
    };
    print_json(&v)
}
