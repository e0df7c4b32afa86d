//! Text in: points whose vectors come from their text fields, text queries,
//! and documents cut into chunks. All of it needs the collection's `embed`
//! model; embedding is CPU-heavy and blocking, like the rest of the engine API.
//!
//! A document `d` becomes points `d#0 .. d#n-1` (contiguous), each with payload
//! `doc_id`, `chunk`, `start`, `end` (character offsets into the document text)
//! plus the document's payload, and text fields `text` (the chunk) and `title`.
//! Re-upserting `d` writes its new chunks in one batch, then deletes the chunks
//! past the new count.

use std::sync::Arc;

use naksha_embed::Embedder;
use naksha_storage::point::{Point, PointId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Collection;
use crate::config::EmbedConfig;
use crate::{Error, Result};

/// Longest document id: chunk ids append `#n` and must stay within
/// [`naksha_storage::point::MAX_ID_LEN`].
pub const MAX_DOCUMENT_ID_LEN: usize = naksha_storage::point::MAX_ID_LEN - 24;

/// A document for [`Collection::upsert_documents`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Document id; its chunks get ids `{id}#{n}`.
    pub id: String,
    /// The full text.
    pub text: String,
    /// Optional title, embedded with every chunk and stored as text field `title`.
    #[serde(default)]
    pub title: Option<String>,
    /// Payload copied to every chunk (a JSON object).
    #[serde(default)]
    pub payload: Value,
}

/// What [`Collection::upsert_documents`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DocumentsWritten {
    /// Documents written.
    pub documents: usize,
    /// Chunks (points) written.
    pub chunks: usize,
    /// Sequence number of the batch.
    pub seq: u64,
}

/// Payload keys the documents endpoint sets on every chunk.
pub const CHUNK_KEYS: [&str; 4] = ["doc_id", "chunk", "start", "end"];

impl Collection {
    /// The collection's model and embed settings, or why there are none.
    /// The collection's embedding model and its settings; an error when it has none.
    pub fn embedder(&self) -> Result<(Arc<Embedder>, &EmbedConfig)> {
        let cfg = self.inner.config.embed.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!("collection {:?} has no embedding model (embed)", self.inner.name))
        })?;
        Ok((self.inner.options.models.get(&cfg.model)?, cfg))
    }

    /// Fills the vector of every point that has none from its text fields.
    pub(crate) fn fill_vectors(&self, points: &mut [Point]) -> Result<()> {
        let missing: Vec<usize> = (0..points.len()).filter(|&i| points[i].vector.is_empty()).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let (model, cfg) = self.embedder().map_err(|e| match e {
            Error::InvalidArgument(_) => Error::InvalidArgument(format!(
                "point {}: vector is required (the collection has no embedding model)",
                points[missing[0]].id
            )),
            e => e,
        })?;
        let mut texts = Vec::with_capacity(missing.len());
        for &i in &missing {
            let p = &points[i];
            let parts: Vec<&str> = cfg.fields.iter().filter_map(|f| p.text.get(f).and_then(Value::as_str)).collect();
            if parts.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "point {}: no vector and none of the embed fields {:?} in its text",
                    p.id, cfg.fields
                )));
            }
            texts.push(parts.join("\n"));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = model.embed(&refs)?;
        for (i, v) in missing.into_iter().zip(vectors) {
            points[i].vector = v;
        }
        Ok(())
    }

    /// Embeds a query text with the collection's model.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>> {
        let (model, _) = self.embedder()?;
        Ok(model.embed(&[text])?.pop().unwrap_or_default())
    }

    /// Cuts documents into chunks, embeds them and upserts the chunks in one
    /// durable batch; then removes chunks left over from longer earlier versions.
    pub fn upsert_documents(&self, docs: Vec<Document>) -> Result<DocumentsWritten> {
        let (model, _) = self.embedder()?;
        let chunking = self.inner.config.chunking.unwrap_or_default();
        let mut points = Vec::new();
        // What is embedded per chunk: the title (if any), a newline, the chunk.
        let mut texts = Vec::new();
        let mut counts = Vec::with_capacity(docs.len());
        let mut seen = std::collections::HashSet::new();
        for doc in &docs {
            if doc.id.is_empty() || !seen.insert(doc.id.as_str()) {
                return Err(Error::InvalidArgument(format!("document id {:?} is empty or repeated", doc.id)));
            }
            if doc.id.len() > MAX_DOCUMENT_ID_LEN {
                return Err(Error::InvalidArgument(format!(
                    "document id of {} bytes is longer than {MAX_DOCUMENT_ID_LEN}",
                    doc.id.len()
                )));
            }
            if doc.text.trim().is_empty() {
                return Err(Error::InvalidArgument(format!("document {:?}: text is empty", doc.id)));
            }
            let base = match &doc.payload {
                Value::Object(m) => m.clone(),
                Value::Null => Map::new(),
                _ => return Err(Error::InvalidArgument(format!("document {:?}: payload must be an object", doc.id))),
            };
            let chunks = model.chunk(&doc.text, chunking)?;
            counts.push(chunks.len());
            for (n, c) in chunks.iter().enumerate() {
                let mut payload = base.clone();
                payload.insert("doc_id".into(), doc.id.clone().into());
                payload.insert("chunk".into(), n.into());
                payload.insert("start".into(), c.start.into());
                payload.insert("end".into(), c.end.into());
                let chunk = &doc.text[c.bytes.clone()];
                let mut text = Map::new();
                text.insert("text".into(), chunk.into());
                match &doc.title {
                    Some(t) => {
                        text.insert("title".into(), t.clone().into());
                        texts.push(format!("{t}\n{chunk}"));
                    }
                    None => texts.push(chunk.to_owned()),
                }
                points.push(Point {
                    id: PointId::Str(format!("{}#{n}", doc.id)),
                    vector: Vec::new(),
                    payload: Value::Object(payload),
                    text: Value::Object(text),
                });
            }
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for (p, v) in points.iter_mut().zip(model.embed(&refs)?) {
            p.vector = v;
        }
        let chunks = points.len();
        let seq = self.upsert(points)?;
        let stale: Vec<PointId> = docs.iter().zip(&counts).flat_map(|(d, &n)| self.chunk_ids_from(&d.id, n)).collect();
        self.delete(stale)?;
        Ok(DocumentsWritten { documents: docs.len(), chunks, seq })
    }

    /// Deletes every chunk of the given documents; returns how many chunks.
    pub fn delete_documents(&self, ids: &[String]) -> Result<usize> {
        let doomed: Vec<PointId> = ids.iter().flat_map(|d| self.chunk_ids_from(d, 0)).collect();
        self.delete(doomed)
    }

    /// Ids `{doc}#{from}`, `{doc}#{from+1}`, ... that exist now.
    fn chunk_ids_from(&self, doc: &str, from: usize) -> Vec<PointId> {
        let st = self.inner.state.read();
        (from..).map(|n| PointId::Str(format!("{doc}#{n}"))).take_while(|id| st.ids.contains_key(id)).collect()
    }
}
