//! The Postgres source (tokio-postgres).
//!
//! - **snapshot**: keyset pagination on the id column (`WHERE id > $last ORDER
//!   BY id LIMIT n`), never OFFSET; rows travel as `row_to_json` so every type
//!   arrives in one JSON form.
//! - **incremental**: the same on `(cursor_column, id)`, polled until cancelled.
//!   Rows deleted in Postgres are not seen (use CDC for deletes).
//! - **cdc**: a publication and a logical replication slot (`pgoutput`). The
//!   slot is created before the initial snapshot, so every change after it is
//!   replayed on top of the snapshot. Changes are read with
//!   `pg_logical_slot_peek_binary_changes` (whole transactions; rolled-back
//!   ones never appear), the changed rows are read back by id, written, and
//!   only then is the slot advanced (`pg_replication_slot_advance`) past their
//!   commit: the confirmed LSN never runs ahead of durable points, and a
//!   restart replays at most the unconfirmed changes, which upserts and deletes
//!   by id make idempotent.
//!
//! The connection string comes from `url`, `url_env` or `url_file` and is
//! never logged or shown; errors are Postgres's own messages, which do not
//! contain it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use naksha_query::PointId;
use serde_json::{Map, Value};
use tokio_postgres::{Client, NoTls};

use crate::job::{Checkpoint, JobRecord, Lag, PgPhase};
use crate::pgoutput::{decode, format_lsn, Cell, Message};
use crate::row::{Labeled, Row};
use crate::spec::{JobSpec, PgMode, SourceSpec};
use crate::writer::Writer;
use crate::{Error, Result};

/// Classify a Postgres error: connection trouble and server restarts are transient.
fn classify(e: tokio_postgres::Error) -> Error {
    let msg = match e.as_db_error() {
        Some(db) => format!("postgres: {} ({})", db.message(), db.code().code()),
        None => format!("postgres: {e}"),
    };
    let transient = match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") || c == "40001" || c == "40P01"
        }
        // No SQLSTATE: the connection failed or was lost.
        None => true,
    };
    if transient {
        Error::Transient(msg)
    } else {
        Error::Failed(msg)
    }
}

struct Source<'a> {
    url: String,
    table: Option<&'a str>,
    query: Option<&'a str>,
    mode: PgMode,
    cursor: Option<&'a str>,
    publication: String,
    slot: String,
    poll: Duration,
}

fn quote(ident: &str) -> String {
    ident.split('.').map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(".")
}

impl<'a> Source<'a> {
    fn of(spec: &'a JobSpec, job_id: &str) -> Result<Self> {
        let SourceSpec::Postgres {
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
        } = &spec.source
        else {
            return Err(Error::Failed("not a Postgres source".into()));
        };
        let url = match (url, url_env, url_file) {
            (Some(u), _, _) => u.clone(),
            (_, Some(var), _) => std::env::var(var)
                .map_err(|_| Error::Failed(format!("source.url_env: the server has no environment variable {var}")))?,
            (_, _, Some(f)) => fs_err::read_to_string(f)
                .map_err(|e| Error::Failed(format!("source.url_file: {e}")))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            _ => return Err(Error::Invalid("source: give url, url_env or url_file".into())),
        };
        let base = table.as_deref().map(|t| t.rsplit('.').next().unwrap_or(t).to_owned()).unwrap_or_default();
        Ok(Self {
            url,
            table: table.as_deref(),
            query: query.as_deref(),
            mode: *mode,
            cursor: cursor_column.as_deref(),
            publication: publication.clone().unwrap_or_else(|| format!("naksha_{base}")),
            slot: slot.clone().unwrap_or_else(|| format!("naksha_{}", job_id.to_ascii_lowercase())),
            poll: Duration::from_secs_f64(poll_secs.unwrap_or(1.0)),
        })
    }

    /// `FROM` target: the quoted table or the parenthesised query.
    fn relation(&self) -> String {
        match (self.table, self.query) {
            (Some(t), _) => quote(t),
            (None, Some(q)) => format!("({q})"),
            _ => String::new(),
        }
    }

    async fn connect(&self) -> Result<Client> {
        let (client, conn) = tokio::time::timeout(Duration::from_secs(10), tokio_postgres::connect(&self.url, NoTls))
            .await
            .map_err(|_| Error::Transient("postgres: connecting timed out after 10 s".into()))?
            .map_err(classify)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "postgres connection closed");
            }
        });
        Ok(client)
    }
}

/// Column names of the source (for mapping checks before a job starts).
pub async fn probe(spec: &JobSpec) -> Result<Vec<String>> {
    let src = Source::of(spec, "probe")?;
    columns(&src.connect().await?, &src).await
}

/// Column names of the source on an open connection; a missing table or bad query is the body's fault.
async fn columns(client: &Client, src: &Source<'_>) -> Result<Vec<String>> {
    let stmt =
        client.prepare(&format!("SELECT * FROM {} t LIMIT 0", src.relation())).await.map_err(|e| {
            match classify(e) {
                Error::Failed(m) => Error::Invalid(format!("source: {m}")),
                other => other,
            }
        })?;
    Ok(stmt.columns().iter().map(|c| c.name().to_owned()).collect())
}

/// The SQL type name of a column of the source, for casts of text parameters.
async fn column_type(client: &Client, rel: &str, col: &str) -> Result<(String, bool)> {
    let stmt = client.prepare(&format!("SELECT t.\"{col}\" FROM {rel} t LIMIT 0")).await.map_err(classify)?;
    let ty = stmt.columns()[0].type_().clone();
    let integral = matches!(ty.name(), "int2" | "int4" | "int8");
    Ok((ty.name().to_owned(), integral))
}

/// Rows of `SELECT row_to_json(t)::text, <key>::text ...` as labeled rows.
fn rows_of(rows: &[tokio_postgres::Row], id_col: usize) -> Vec<Labeled> {
    rows.iter()
        .map(|r| {
            let json: String = r.get(0);
            let id: Option<String> = r.get(id_col);
            let row = serde_json::from_str::<Map<String, Value>>(&json)
                .map(|fields| Row { fields, vector: None })
                .map_err(|e| format!("row_to_json: {e}"));
            Labeled { label: format!("id {}", id.unwrap_or_default()), row }
        })
        .collect()
}

/// Run a Postgres job from its checkpoint.
pub async fn run(w: &mut Writer, rec: &JobRecord) -> Result<()> {
    let src = Source::of(&rec.spec, &rec.id)?;
    let client = src.connect().await?;
    let columns = columns(&client, &src).await.map_err(|e| match e {
        Error::Invalid(m) => Error::Failed(m),
        e => e,
    })?;
    rec.spec.mapping.check_columns(&columns).map_err(|e| Error::Failed(e.to_string()))?;
    let id = rec.spec.mapping.id.clone();
    let rel = src.relation();
    let (id_type, integral) = column_type(&client, &rel, &id).await?;
    let (mut phase, mut slot_created) = match w.checkpoint() {
        Checkpoint::Postgres { phase, slot_created } => (phase, slot_created),
        _ => (PgPhase::Snapshot { after: None }, false),
    };
    if src.mode == PgMode::Cdc && matches!(phase, PgPhase::Snapshot { after: None }) {
        slot_created |= prepare_cdc(&client, &src).await?;
        w.job.update(|r| r.checkpoint = Checkpoint::Postgres { phase: phase.clone(), slot_created });
        w.save(true)?;
    }
    if src.mode == PgMode::Cdc {
        check_cdc(&client, &src, &id).await?;
    }
    let batch = w.batch_size() as i64;
    // The initial load, by keyset pages.
    if let PgPhase::Snapshot { after } = &phase {
        if src.mode != PgMode::Incremental {
            let total: i64 =
                client.query_one(&format!("SELECT count(*) FROM {rel} t"), &[]).await.map_err(classify)?.get(0);
            w.totals(None, Some(total.max(0) as u64));
            let mut after = after.clone();
            loop {
                let (sql, rows) = match &after {
                    None => (
                        format!("SELECT row_to_json(t)::text, t.\"{id}\"::text FROM (SELECT * FROM {rel} s ORDER BY s.\"{id}\" LIMIT $1) t ORDER BY t.\"{id}\""),
                        None,
                    ),
                    Some(a) => (
                        format!("SELECT row_to_json(t)::text, t.\"{id}\"::text FROM (SELECT * FROM {rel} s WHERE s.\"{id}\" > $2::text::{id_type} ORDER BY s.\"{id}\" LIMIT $1) t ORDER BY t.\"{id}\""),
                        Some(a.clone()),
                    ),
                };
                let rows = match &rows {
                    None => client.query(&sql, &[&batch]).await,
                    Some(a) => client.query(&sql, &[&batch, a]).await,
                }
                .map_err(classify)?;
                let Some(last) = rows.last().map(|r| r.get::<_, Option<String>>(1)) else { break };
                let full = rows.len() as i64 == batch;
                after = last;
                let next = PgPhase::Snapshot { after: after.clone() };
                w.write(rows_of(&rows, 1), None, 0, Checkpoint::Postgres { phase: next, slot_created }).await?;
                if !full {
                    break;
                }
            }
            phase = match src.mode {
                PgMode::Cdc => PgPhase::Stream { lsn: String::new() },
                _ => return Ok(()),
            };
            w.job.update(|r| r.checkpoint = Checkpoint::Postgres { phase: phase.clone(), slot_created });
            w.save(true)?;
        } else {
            phase = PgPhase::Incremental { cursor: None, id: None };
        }
    }
    match src.mode {
        PgMode::Incremental => incremental(w, &client, &src, &id, &id_type, phase).await,
        PgMode::Cdc => stream(w, &client, &src, &id, &id_type, integral, slot_created).await,
        PgMode::Snapshot => Ok(()),
    }
}

/// Cursor polling until cancelled.
async fn incremental(
    w: &mut Writer,
    client: &Client,
    src: &Source<'_>,
    id: &str,
    id_type: &str,
    phase: PgPhase,
) -> Result<()> {
    let rel = src.relation();
    let cur = src.cursor.unwrap_or_default();
    let (cur_type, _) = column_type(client, &rel, cur).await?;
    let (mut cursor, mut last_id) = match phase {
        PgPhase::Incremental { cursor, id } => (cursor, id),
        _ => (None, None),
    };
    let batch = w.batch_size() as i64;
    let mut caught_up = Instant::now();
    loop {
        let select =
            format!("SELECT row_to_json(t)::text, t.\"{id}\"::text, t.\"{cur}\"::text FROM (SELECT * FROM {rel} s");
        let order = format!("ORDER BY s.\"{cur}\", s.\"{id}\" LIMIT $1) t ORDER BY t.\"{cur}\", t.\"{id}\"");
        let rows = match (&cursor, &last_id) {
            (Some(c), Some(i)) => {
                let sql = format!(
                    "{select} WHERE (s.\"{cur}\", s.\"{id}\") > ($2::text::{cur_type}, $3::text::{id_type}) {order}"
                );
                client.query(&sql, &[&batch, c, i]).await
            }
            _ => client.query(&format!("{select} WHERE s.\"{cur}\" IS NOT NULL {order}"), &[&batch]).await,
        }
        .map_err(classify)?;
        if let Some(last) = rows.last() {
            last_id = last.get(1);
            cursor = last.get(2);
            let cp = Checkpoint::Postgres {
                phase: PgPhase::Incremental { cursor: cursor.clone(), id: last_id.clone() },
                slot_created: false,
            };
            let full = rows.len() as i64 == batch;
            w.write(rows_of(&rows, 1), None, 0, cp).await?;
            if full {
                w.lag(Lag { seconds: caught_up.elapsed().as_secs_f64(), bytes: None });
                continue;
            }
        }
        caught_up = Instant::now();
        w.lag(Lag { seconds: 0.0, bytes: None });
        w.save(true)?;
        w.sleep(src.poll).await?;
    }
}

/// Create the publication and slot when missing; returns whether the slot is this job's own.
async fn prepare_cdc(client: &Client, src: &Source<'_>) -> Result<bool> {
    let level: String = client.query_one("SHOW wal_level", &[]).await.map_err(classify)?.get(0);
    if level != "logical" {
        return Err(Error::Failed(format!(
            "postgres: wal_level is {level}; change data capture needs wal_level = logical"
        )));
    }
    let table = src.table.unwrap_or_default();
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&src.publication])
        .await
        .map_err(classify)?
        .is_some();
    if !exists {
        let sql = format!("CREATE PUBLICATION \"{}\" FOR TABLE {}", src.publication, quote(table));
        client.batch_execute(&sql).await.map_err(classify)?;
    }
    let slot = client
        .query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&src.slot])
        .await
        .map_err(classify)?;
    if slot.is_some() {
        return Ok(false);
    }
    client
        .query_one("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&src.slot])
        .await
        .map_err(classify)?;
    tracing::info!(slot = %src.slot, publication = %src.publication, "replication slot created");
    Ok(true)
}

/// Checks that hold for the whole stream: the table is published and deletes carry the id.
async fn check_cdc(client: &Client, src: &Source<'_>, id: &str) -> Result<()> {
    let table = src.table.unwrap_or_default();
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    let published = client
        .query_opt(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
            &[&src.publication, &schema, &name],
        )
        .await
        .map_err(classify)?
        .is_some();
    if !published {
        return Err(Error::Failed(format!("publication {:?} does not include table {table}", src.publication)));
    }
    let ident: i8 = client
        .query_one("SELECT relreplident FROM pg_class WHERE oid = $1::text::regclass", &[&quote(table)])
        .await
        .map_err(classify)?
        .get(0);
    if ident as u8 == b'f' {
        return Ok(());
    }
    let key = client
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::text::regclass AND (i.indisprimary OR i.indisreplident)",
            &[&quote(table)],
        )
        .await
        .map_err(classify)?;
    if !key.iter().any(|r| r.get::<_, String>(0) == id) {
        return Err(Error::Failed(format!(
            "deletes from {table} would not carry {id:?}: make mapping.id its primary key or set REPLICA IDENTITY FULL"
        )));
    }
    Ok(())
}

/// What a captured change asks for, per id (the last change wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Upsert,
    Delete,
}

/// Follow the slot until cancelled.
async fn stream(
    w: &mut Writer,
    client: &Client,
    src: &Source<'_>,
    id: &str,
    id_type: &str,
    integral: bool,
    slot_created: bool,
) -> Result<()> {
    let table = src.table.unwrap_or_default();
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    let rel = src.relation();
    let upto = (w.batch_size() * 4).max(100) as i32;
    let mut caught_up = Instant::now();
    let peek = "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)";
    loop {
        w.check_stop()?;
        let rows = client.query(peek, &[&src.slot, &upto, &src.publication]).await.map_err(classify)?;
        // oid → position of the id column, for our table.
        let mut rels: HashMap<u32, Option<usize>> = HashMap::new();
        let mut changes: Vec<(String, Change)> = Vec::new();
        let mut truncated = false;
        let mut end: Option<u64> = None;
        let key_text = |cells: &[Cell], at: usize| -> Option<String> {
            match cells.get(at) {
                Some(Cell::Text(t)) => Some(t.clone()),
                _ => None,
            }
        };
        for r in &rows {
            let data: Vec<u8> = r.get(1);
            let msg = decode(&data).map_err(|e| Error::Failed(format!("pgoutput: {e}")))?;
            match msg {
                Message::Relation { oid, namespace, name: n, columns } => {
                    let ours = namespace == schema && n == name;
                    rels.insert(oid, ours.then(|| columns.iter().position(|c| c == id)).flatten());
                }
                Message::Insert { oid, new } | Message::Update { oid, new, key: None } => {
                    if let Some(Some(at)) = rels.get(&oid) {
                        if let Some(k) = key_text(&new, *at) {
                            changes.push((k, Change::Upsert));
                        }
                    }
                }
                Message::Update { oid, key: Some(old), new } => {
                    if let Some(Some(at)) = rels.get(&oid) {
                        // The id itself changed: the old point goes.
                        if let (Some(o), Some(k)) = (key_text(&old, *at), key_text(&new, *at)) {
                            if o != k {
                                changes.push((o, Change::Delete));
                            }
                            changes.push((k, Change::Upsert));
                        }
                    }
                }
                Message::Delete { oid, key } => {
                    if let Some(Some(at)) = rels.get(&oid) {
                        if let Some(k) = key_text(&key, *at) {
                            changes.push((k, Change::Delete));
                        }
                    }
                }
                Message::Truncate { oids } => {
                    if oids.iter().any(|o| matches!(rels.get(o), Some(Some(_)))) {
                        changes.clear();
                        truncated = true;
                    }
                }
                Message::Commit { end_lsn } => end = Some(end_lsn),
                Message::Begin | Message::Other => {}
            }
        }
        let Some(end) = end else {
            caught_up = Instant::now();
            let bytes: Option<i64> = client
                .query_one(
                    "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
                    &[&src.slot],
                )
                .await
                .map_err(classify)?
                .get(0);
            w.lag(Lag { seconds: 0.0, bytes: bytes.map(|b| b.max(0) as u64) });
            w.save(true)?;
            w.sleep(src.poll).await?;
            continue;
        };
        let cp = Checkpoint::Postgres { phase: PgPhase::Stream { lsn: format_lsn(end) }, slot_created };
        if truncated {
            w.delete_all(cp.clone()).await?;
        }
        let mut last: HashMap<String, Change> = HashMap::new();
        let mut order = Vec::new();
        for (k, c) in changes {
            if last.insert(k.clone(), c).is_none() {
                order.push(k);
            }
        }
        let (ups, dels): (Vec<String>, Vec<String>) = order.into_iter().partition(|k| last[k] == Change::Upsert);
        let mut gone: Vec<PointId> = dels.iter().map(|k| pg_point_id(k, integral)).collect();
        for chunk in ups.chunks(w.batch_size()) {
            // Read the rows back: one JSON form for snapshot and stream, and TOASTed values included.
            let sql = format!(
                "SELECT row_to_json(t)::text, t.\"{id}\"::text FROM {rel} t WHERE t.\"{id}\" = ANY($1::text[]::{id_type}[])"
            );
            let keys: Vec<String> = chunk.to_vec();
            let rows = client.query(&sql, &[&keys]).await.map_err(classify)?;
            let found: std::collections::HashSet<String> =
                rows.iter().filter_map(|r| r.get::<_, Option<String>>(1)).collect();
            // Rows changed and then deleted since: the delete that follows removes them; remove them now too.
            gone.extend(chunk.iter().filter(|k| !found.contains(*k)).map(|k| pg_point_id(k, integral)));
            w.write(rows_of(&rows, 1), None, 0, cp.clone()).await?;
        }
        if !gone.is_empty() {
            w.delete(gone, cp.clone()).await?;
        }
        w.skipped(0, cp)?;
        w.save(true)?;
        // Only now, with the points durable, may the slot forget these changes.
        client
            .query_one("SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)", &[&src.slot, &format_lsn(end)])
            .await
            .map_err(classify)?;
        w.lag(Lag { seconds: caught_up.elapsed().as_secs_f64(), bytes: None });
    }
}

/// The point id of an id column's text form (integers stay numbers, as in `row_to_json`).
fn pg_point_id(text: &str, integral: bool) -> PointId {
    match (integral, text.parse::<u64>()) {
        (true, Ok(n)) => PointId::Num(n),
        _ => PointId::Str(text.to_owned()),
    }
}

/// After a cancel: drop the job's own replication slot, so Postgres stops keeping WAL for it.
pub async fn cleanup(rec: &JobRecord) -> Result<()> {
    let Checkpoint::Postgres { slot_created: true, .. } = rec.checkpoint else { return Ok(()) };
    let src = Source::of(&rec.spec, &rec.id)?;
    let client = src.connect().await?;
    client
        .query_opt(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&src.slot],
        )
        .await
        .map_err(classify)?;
    tracing::info!(slot = %src.slot, "replication slot dropped");
    Ok(())
}
