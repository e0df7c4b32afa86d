//! Ingestion jobs end to end (`naksha-bench ingest --source ...`): rows/s and
//! points/s of a job from a Parquet file, an S3 object (moto on loopback) and
//! a Postgres table (a cluster of its own), with the vector given and with
//! embedding in the server; beside the raw embedding throughput of the same
//! texts (Naksha's encoder in-process, no I/O) and beside a Python pipeline of
//! the usual shape on the same rows (psycopg → sentence-transformers → HTTP
//! upsert in batches). Time runs from `POST /v1/jobs` to `succeeded`, so it
//! includes reading, mapping, embedding and durable writes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use arrow_array::{FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use naksha_ingest::testing::{PgCluster, S3Server};
use serde_json::{json, Value};

use crate::common::agent;

/// Settings of one run.
#[derive(Clone, Debug)]
pub struct SourcesArgs {
    /// `parquet`, `s3`, `postgres`.
    pub sources: Vec<String>,
    /// Points with a given vector.
    pub points: usize,
    /// Their dimension.
    pub dim: usize,
    /// Texts embedded in the server (real corpus titles and descriptions).
    pub texts: Vec<String>,
    /// Where the model lives.
    pub models_dir: PathBuf,
    /// A `naksha-bench` binary (its hidden `serve` runs the server).
    pub server_exe: PathBuf,
    /// Skip the Python pipeline.
    pub skip_peer: bool,
}

/// One measured job.
#[derive(Clone, Debug)]
pub struct Cell {
    /// Source.
    pub source: String,
    /// `given` or `embedded`.
    pub vectors: &'static str,
    /// Rows.
    pub rows: usize,
    /// Seconds from POST to succeeded.
    pub secs: f64,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The jobs.
    pub cells: Vec<Cell>,
    /// Raw embedding of the same texts, texts/s.
    pub raw_embed: f64,
    /// The Python pipeline: (engine, rows/s).
    pub peer: Option<(String, f64)>,
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &SourcesArgs, data: &Path, import: &Path) -> Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut cmd = Command::new(&args.server_exe);
    cmd.args(["serve", "--data-dir"])
        .arg(data)
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .env("NAKSHA__MODELS__DIR", &args.models_dir)
        .env("NAKSHA__JOBS__IMPORT_DIRS", format!("[{:?}]", import.display().to_string()))
        .env("NAKSHA__LOG__LEVEL", "warn")
        .stdout(Stdio::null());
    for (k, v) in S3Server::env() {
        cmd.env(k, v);
    }
    let server =
        Server { child: cmd.spawn().context("cannot start the server")?, url: format!("http://127.0.0.1:{port}") };
    let started = Instant::now();
    while !agent().get(format!("{}/readyz", server.url)).call().is_ok_and(|r| r.status() == 200) {
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the server did not become ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

fn call(method: &str, url: &str, body: Option<&Value>) -> Result<Value> {
    let a = agent();
    let res = match (method, body) {
        ("PUT", Some(b)) => a.put(url).header("Content-Type", "application/json").send(b.to_string()),
        ("POST", Some(b)) => a.post(url).header("Content-Type", "application/json").send(b.to_string()),
        _ => a.get(url).call(),
    }?;
    let status = res.status().as_u16();
    let v: Value = serde_json::from_str(&res.into_body().read_to_string()?)?;
    if status >= 400 {
        bail!("{method} {url}: {status} {v}");
    }
    Ok(v)
}

/// Run a job to its end; seconds from POST to succeeded.
fn time_job(s: &Server, body: Value, rows: usize) -> Result<f64> {
    let t = Instant::now();
    let v = call("POST", &format!("{}/v1/jobs", s.url), Some(&body))?;
    let id = v["id"].as_str().context("job id")?.to_owned();
    loop {
        let v = call("GET", &format!("{}/v1/jobs/{id}", s.url), None)?;
        match v["status"].as_str() {
            Some("succeeded") => {
                let secs = t.elapsed().as_secs_f64();
                if v["progress"]["written"].as_u64() != Some(rows as u64) {
                    bail!("the job wrote {} of {rows}: {v}", v["progress"]["written"]);
                }
                return Ok(secs);
            }
            Some("failed" | "cancelled") => bail!("job {id} ended: {v}"),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn vectors_batch(n: usize, dim: usize) -> RecordBatch {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let values = Float32Array::from_iter_values((0..n * dim).map(|_| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let emb = FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None).expect("fixed-size list");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("title", DataType::Utf8, false),
        Field::new(
            "emb",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), dim as i32),
            false,
        ),
    ]));
    let titles = StringArray::from_iter_values((0..n).map(|i| format!("item {i}")));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(UInt64Array::from_iter_values(0..n as u64)), Arc::new(titles), Arc::new(emb)],
    )
    .expect("batch")
}

fn texts_batch(texts: &[String]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("title", DataType::Utf8, false),
    ]));
    let ids = UInt64Array::from_iter_values(0..texts.len() as u64);
    RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(StringArray::from_iter_values(texts))]).expect("batch")
}

fn write_parquet(path: &Path, b: &RecordBatch) -> Result<()> {
    let mut w = parquet::arrow::ArrowWriter::try_new(fs_err::File::create(path)?, b.schema(), None)?;
    w.write(b)?;
    w.close()?;
    Ok(())
}

/// Raw embedding throughput of `texts`: Naksha's encoder in-process, texts/s.
fn raw_embed(args: &SourcesArgs) -> Result<f64> {
    let models = naksha_embed::Models::open(&args.models_dir, naksha_embed::DeviceKind::Cpu)?;
    let m = models.get("all-minilm-l6-v2")?;
    let refs: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    m.embed(&refs[..refs.len().min(64)])?;
    let t = Instant::now();
    for chunk in refs.chunks(256) {
        m.embed(chunk)?;
    }
    Ok(refs.len() as f64 / t.elapsed().as_secs_f64())
}

/// Run every source.
pub fn run(args: &SourcesArgs) -> Result<Report> {
    let work = tempfile::tempdir()?;
    let (data, import) = (work.path().join("data"), work.path().join("import"));
    fs_err::create_dir_all(&import)?;
    let vec_batch = vectors_batch(args.points, args.dim);
    let text_batch = texts_batch(&args.texts);
    write_parquet(&import.join("vectors.parquet"), &vec_batch)?;
    write_parquet(&import.join("texts.parquet"), &text_batch)?;
    let raw = raw_embed(args)?;
    eprintln!("raw embedding: {raw:.0} texts/s");
    let s = spawn(args, &data, &import)?;
    let mut cells = Vec::new();
    let mut n = 0;
    let mut collection = |embed: bool| -> Result<String> {
        n += 1;
        let name = format!("c{n}");
        let body = match embed {
            true => json!({"embed": {"model": "all-minilm-l6-v2", "fields": ["title"]}}),
            false => json!({"vectors": {"dim": args.dim, "metric": "cosine"}}),
        };
        call("PUT", &format!("{}/v1/collections/{name}", s.url), Some(&body))?;
        Ok(name)
    };
    let given = json!({"id": "id", "payload": ["title"], "vector": "emb"});
    let embedded = json!({"id": "id", "text": ["title"]});
    let mut peer = None;
    for source in &args.sources {
        let (src_vec, src_txt, keep): (Value, Value, Option<Box<dyn std::any::Any>>) = match source.as_str() {
            "parquet" => (
                json!({"type": "file", "path": "vectors.parquet"}),
                json!({"type": "file", "path": "texts.parquet"}),
                None,
            ),
            "s3" => {
                let s3 = S3Server::start();
                let rt = tokio::runtime::Runtime::new()?;
                rt.block_on(async {
                    let c = s3.client().await;
                    c.create_bucket().bucket("bench").send().await?;
                    for f in ["vectors.parquet", "texts.parquet"] {
                        let body = fs_err::read(import.join(f))?;
                        c.put_object().bucket("bench").key(format!("{f}/{f}")).body(body.into()).send().await?;
                    }
                    anyhow::Ok(())
                })?;
                let src = |f: &str| {
                    json!({"type": "s3", "bucket": "bench", "prefix": format!("{f}/"), "endpoint": s3.endpoint,
                           "region": "us-east-1", "format": "parquet"})
                };
                (src("vectors.parquet"), src("texts.parquet"), Some(Box::new(s3)))
            }
            "postgres" => {
                let pg = PgCluster::start();
                let csv = work.path().join("rows.csv");
                let mut text = String::new();
                let dim = args.dim;
                let emb = vec_batch.column(2).as_any().downcast_ref::<FixedSizeListArray>().context("emb")?;
                let values = emb.values().as_any().downcast_ref::<Float32Array>().context("values")?.values();
                for i in 0..args.points {
                    let v: Vec<String> = values[i * dim..(i + 1) * dim].iter().map(|x| x.to_string()).collect();
                    let _ = writeln!(text, "{i},item {i},\"{{{}}}\"", v.join(","));
                }
                fs_err::write(&csv, text)?;
                let tcsv = work.path().join("texts.csv");
                let mut w = String::new();
                for (i, t) in args.texts.iter().enumerate() {
                    let _ = writeln!(w, "{i},\"{}\"", t.replace('"', "\"\""));
                }
                fs_err::write(&tcsv, w)?;
                let _ = Command::new("chmod").args(["-R", "a+rx"]).arg(work.path()).status();
                pg.sql(&format!(
                    "CREATE TABLE vectors (id bigint PRIMARY KEY, title text, emb real[]); \
                     COPY vectors FROM '{}' CSV; \
                     CREATE TABLE texts (id bigint PRIMARY KEY, title text); COPY texts FROM '{}' CSV",
                    csv.display(),
                    tcsv.display()
                ));
                let src = |t: &str| json!({"type": "postgres", "url": pg.url(), "table": t});
                if !args.skip_peer {
                    let c = {
                        // The peer writes vectors of the model's dimension.
                        let name = "peer".to_owned();
                        let body = json!({"vectors": {"dim": 384, "metric": "cosine"}});
                        call("PUT", &format!("{}/v1/collections/{name}", s.url), Some(&body))?;
                        name
                    };
                    peer = Some(python_pipeline(&pg, &s.url, &c, &args.models_dir)?);
                }
                (src("vectors"), src("texts"), Some(Box::new(pg)))
            }
            other => bail!("unknown source {other:?} (parquet, s3, postgres)"),
        };
        let c = collection(false)?;
        let body = json!({"collection": c, "source": src_vec, "mapping": given, "batch_size": 5000});
        let secs = time_job(&s, body, args.points)?;
        eprintln!("{source}, vectors given: {:.0} points/s", args.points as f64 / secs);
        cells.push(Cell { source: source.clone(), vectors: "given", rows: args.points, secs });
        let c = collection(true)?;
        let body = json!({"collection": c, "source": src_txt, "mapping": embedded, "batch_size": 256});
        let secs = time_job(&s, body, args.texts.len())?;
        eprintln!("{source}, embedded: {:.0} points/s", args.texts.len() as f64 / secs);
        cells.push(Cell { source: source.clone(), vectors: "embedded", rows: args.texts.len(), secs });
        drop(keep);
    }
    Ok(Report { cells, raw_embed: raw, peer })
}

fn python_pipeline(pg: &PgCluster, url: &str, collection: &str, models_dir: &Path) -> Result<(String, f64)> {
    let python = crate::common::ensure_named_venv(".venv-ingest", "requirements-ingest.txt")?;
    let out = Command::new(python)
        .arg(crate::common::bench_dir().join("peers/ingest_peer.py"))
        .args(["--pg", &pg.url(), "--table", "texts", "--url", url, "--collection", collection])
        .arg("--model")
        .arg(models_dir.join("all-minilm-l6-v2"))
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .context("cannot run the Python pipeline")?;
    if !out.status.success() {
        bail!("the Python pipeline failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.lines().last().unwrap_or_default())?;
    let rows = v["rows"].as_f64().unwrap_or(0.0);
    Ok((v["engine"].as_str().unwrap_or_default().to_owned(), rows / v["secs"].as_f64().unwrap_or(f64::INFINITY)))
}

/// The report as Markdown.
pub fn markdown(r: &Report, args: &SourcesArgs, command: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Ingestion jobs: Parquet, S3 and Postgres sources\n");
    let _ = writeln!(s, "`{command}` on {}.\n", crate::common::machine());
    let _ = writeln!(
        s,
        "Vectors given: {} points × {} (cosine), Parquet fixed-size lists / Postgres `real[]`, batches of 5,000. \
         Embedded: {} real texts (Debian package titles and descriptions), all-MiniLM-L6-v2 in the server, batches of 256. \
         Time runs from `POST /v1/jobs` to `succeeded` (read, map, embed, durable upsert).\n",
        args.points,
        args.dim,
        args.texts.len()
    );
    let _ = writeln!(s, "| source | vectors | rows | seconds | points/s | vs raw embedding | vs Python pipeline |");
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for c in &r.cells {
        let rate = c.rows as f64 / c.secs;
        let (vs_raw, vs_peer) = match c.vectors {
            "embedded" => (
                format!("{:.2}×", rate / r.raw_embed),
                r.peer.as_ref().map_or("-".into(), |(_, p)| format!("{:.2}×", rate / p)),
            ),
            _ => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.0} | {vs_raw} | {vs_peer} |",
            c.source, c.vectors, c.rows, c.secs, rate
        );
    }
    let _ = writeln!(
        s,
        "\nRaw embedding of the same texts (Naksha's encoder in-process, batches of 256, no I/O): {:.0} texts/s.",
        r.raw_embed
    );
    if let Some((engine, rate)) = &r.peer {
        let _ = writeln!(s, "\nPython pipeline on the Postgres texts ({engine}): {rate:.0} rows/s.");
    }
    s
}
