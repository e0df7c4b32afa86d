//! A segment: an immutable, `mmap`ed set of points with its HNSW graph,
//! optional int8 codes and payload indexes. Segments are written once (by a
//! flush or a merge), never modified; deletions live in a separate bitmap file
//! that the collection replaces as a whole.
//!
//! ## Directory `seg-{id:08}/`
//!
//! | file              | magic      | content (all [`naksha_storage::section`] files)                 |
//! |-------------------|------------|-----------------------------------------------------------------|
//! | `vectors.bin`     | `NKVECS`   | user = dim; section 0: `f32` vectors `n × dim` (prepared)        |
//! | `points.bin`      | `NKPOINT`  | user = n; 0: `u64` id offsets (n+1), 1: encoded ids, 2: `u64` payload offsets (n+1), 3: JSON payloads, 4: `u64` text offsets (n+1), 5: JSON text fields (4 and 5 absent in segments written before text fields: no text) |
//! | `graph.hnsw`      | `NKHNSW`   | the graph ([`crate::hnsw`] documents its sections)               |
//! | `sq8.bin`         | `NKSQ8`    | int8 codes, when the collection quantizes ([`crate::quant::sq8`]) |
//! | `deletes-{g}.bin` | `NKDELS`   | user = n; section 0: `u64` bitmap words of deleted offsets        |
//! | `text/`           | (tantivy)  | BM25 index of the text fields, when the collection has any ([`crate::text`], format [`crate::text::FORMAT_VERSION`]) |
//!
//! Ids and payloads use the codec of [`naksha_storage::point`]. Payload indexes
//! are rebuilt from `points.bin` when the segment opens; the graph is used in
//! place and never rebuilt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use naksha_storage::point::{Decoder, Encoder, PointId};
use naksha_storage::section::{self, SectionFile};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bitset::Bitset;
use crate::hnsw::{F32Scorer, Graph, HnswBuilder, HnswParams};
use crate::metric::Metric;
use crate::payload::{FieldType, PayloadIndex};
use crate::quant::{sq8::Sq8, Quantization};
use crate::stored::Stored;
use crate::text::{TextConfig, TextIndex};
use crate::topk::{self, Neighbor};
use crate::{Error, Result};

const VECTORS_MAGIC: [u8; 8] = *b"NKVECS\0\0";
const POINTS_MAGIC: [u8; 8] = *b"NKPOINT\0";
const DELETES_MAGIC: [u8; 8] = *b"NKDELS\0\0";

/// Section of `vectors.bin`: the prepared `f32` vectors.
const VECTORS: usize = 0;
/// Sections of `points.bin`: each table of `u64` offsets (n + 1) is followed by its blob.
mod points_bin {
    /// `u64` id offsets.
    pub const ID_OFFSETS: usize = 0;
    /// `u64` payload offsets.
    pub const PAYLOAD_OFFSETS: usize = 2;
    /// `u64` text offsets (absent in segments written before text fields).
    pub const TEXT_OFFSETS: usize = 4;
    /// The blob after an offsets table.
    pub const fn blob(table: usize) -> usize {
        table + 1
    }
    /// Sections of a segment with text fields.
    pub const WITH_TEXT: usize = 6;
}
/// Section of `deletes-{g}.bin`: the bitmap words.
const DELETE_WORDS: usize = 0;

/// What a segment needs to know about its collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentConfig {
    /// Vector dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// Graph parameters.
    pub hnsw: HnswParams,
    /// Quantization for the graph walk.
    pub quantization: Quantization,
    /// Payload keys to index.
    pub payload_index: BTreeMap<String, FieldType>,
    /// Text fields to index for BM25 (none: no `text/` folder).
    #[serde(default)]
    pub text: Option<TextConfig>,
}

/// Points to write into a new segment (offset order).
#[derive(Debug, Default)]
pub struct SegmentData {
    /// Ids.
    pub ids: Vec<PointId>,
    /// Prepared vectors, `n × dim`.
    pub vectors: Vec<f32>,
    /// Payloads.
    pub payloads: Vec<Value>,
    /// Text fields (`null` for none); may be left empty when no point has text.
    pub texts: Vec<Value>,
}

/// How to search a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Walk the HNSW graph (with filters inside the walk).
    Graph,
    /// Score every admitted point exactly.
    Exact,
}

/// An open segment.
#[derive(Debug)]
pub struct Segment {
    dir: PathBuf,
    n: usize,
    dim: usize,
    metric: Metric,
    vectors: Stored<f32>,
    points: Arc<SectionFile>,
    graph: Graph,
    sq8: Option<Sq8>,
    payload_index: PayloadIndex,
    text: Option<TextIndex>,
}

/// Encode `items` back to back into one blob, with an `n + 1` offsets table.
fn offsets_table<T>(items: &[T], encode: impl Fn(&mut Encoder, &T)) -> (Vec<u64>, Vec<u8>) {
    let mut offsets = Vec::with_capacity(items.len() + 1);
    let mut e = Encoder::default();
    offsets.push(0);
    for it in items {
        encode(&mut e, it);
        offsets.push(e.buf.len() as u64);
    }
    (offsets, e.buf)
}

impl Segment {
    /// Write a new segment into `dir` (created; must not exist): build the graph
    /// in parallel, quantize if configured, fsync every file and the directory.
    pub fn write(dir: &Path, config: &SegmentConfig, data: SegmentData) -> Result<()> {
        let n = data.ids.len();
        assert_eq!(data.vectors.len(), n * config.dim, "vectors must be n × dim");
        fs_err::create_dir_all(dir).map_err(naksha_storage::Error::from)?;
        let (id_off, id_blob) = offsets_table(&data.ids, Encoder::id);
        let (pl_off, pl_blob) = offsets_table(&data.payloads, Encoder::payload);
        let mut texts = data.texts;
        texts.resize(n, Value::Null);
        let (tx_off, tx_blob) = offsets_table(&texts, Encoder::payload);
        if let Some(tc) = &config.text {
            TextIndex::build(&dir.join("text"), tc, &texts)?;
        }
        section::write(
            &dir.join("points.bin"),
            POINTS_MAGIC,
            n as u64,
            &[
                bytemuck::cast_slice(&id_off),
                &id_blob,
                bytemuck::cast_slice(&pl_off),
                &pl_blob,
                bytemuck::cast_slice(&tx_off),
                &tx_blob,
            ],
        )?;
        if config.quantization == Quantization::Int8 {
            Sq8::encode(&data.vectors, config.dim).write(&dir.join("sq8.bin"))?;
        }
        let (graph, vectors) = HnswBuilder::build(config.dim, config.metric, config.hnsw, data.vectors).freeze();
        graph.write(&dir.join("graph.hnsw"))?;
        section::write(&dir.join("vectors.bin"), VECTORS_MAGIC, config.dim as u64, &[bytemuck::cast_slice(&vectors)])?;
        naksha_storage::dirs::sync_dir(dir)?;
        Ok(())
    }

    /// Open the segment in `dir`: map and verify its files, load the graph in place.
    pub fn open(dir: &Path, config: &SegmentConfig) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptSegment { path: dir.to_owned(), reason };
        let vfile = Arc::new(SectionFile::open(&dir.join("vectors.bin"), VECTORS_MAGIC)?);
        if vfile.user() as usize != config.dim {
            return Err(corrupt(format!("dimension {} does not match the collection's {}", vfile.user(), config.dim)));
        }
        let vectors = Stored::<f32>::mapped(&vfile, VECTORS)?;
        let points = Arc::new(SectionFile::open(&dir.join("points.bin"), POINTS_MAGIC)?);
        let n = points.user() as usize;
        if vectors.as_slice().len() != n * config.dim {
            return Err(corrupt("vector count does not match the point count".into()));
        }
        for table in [points_bin::ID_OFFSETS, points_bin::PAYLOAD_OFFSETS] {
            let o = points.slice::<u64>(table)?;
            let len = points.bytes(points_bin::blob(table))?.len() as u64;
            if o.len() != n + 1 || o.first() != Some(&0) || o.windows(2).any(|w| w[0] > w[1]) || o[n] != len {
                return Err(corrupt("bad offsets table in points.bin".into()));
            }
        }
        let graph = Graph::open(&dir.join("graph.hnsw"))?;
        if graph.len() != n {
            return Err(corrupt("graph node count does not match the point count".into()));
        }
        let sq8 = match config.quantization {
            Quantization::Int8 => Some(Sq8::open(&dir.join("sq8.bin"), config.dim, n)?),
            Quantization::None => None,
        };
        let text = match &config.text {
            Some(tc) if dir.join("text").is_dir() => Some(TextIndex::open(&dir.join("text"), tc)?),
            Some(_) => return Err(corrupt("the text index folder text/ is missing".into())),
            None => None,
        };
        let mut seg = Segment {
            dir: dir.to_owned(),
            n,
            dim: config.dim,
            metric: config.metric,
            vectors,
            points,
            graph,
            sq8,
            payload_index: PayloadIndex::default(),
            text,
        };
        let payloads = (0..n as u32).map(|i| seg.payload(i)).collect::<Result<Vec<_>>>()?;
        seg.payload_index = PayloadIndex::build(&config.payload_index, &payloads);
        Ok(seg)
    }

    /// Directory of the segment.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of points (deleted ones included).
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the segment holds no points.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Payload indexes.
    pub fn payload_index(&self) -> &PayloadIndex {
        &self.payload_index
    }

    /// The BM25 index of the text fields (when the collection has any).
    pub fn text_index(&self) -> Option<&TextIndex> {
        self.text.as_ref()
    }

    /// Prepared vector at `offset`.
    pub fn vector(&self, offset: u32) -> &[f32] {
        let at = offset as usize * self.dim;
        &self.vectors.as_slice()[at..at + self.dim]
    }

    fn item(&self, table: usize, offset: u32) -> Result<Decoder<'_>> {
        let offs = self.points.slice::<u64>(table)?;
        let blob = self.points.bytes(points_bin::blob(table))?;
        let (a, b) = (offs[offset as usize] as usize, offs[offset as usize + 1] as usize);
        Ok(Decoder::new(&blob[a..b]))
    }

    /// Id at `offset`.
    pub fn id(&self, offset: u32) -> Result<PointId> {
        Ok(self.item(points_bin::ID_OFFSETS, offset)?.id()?)
    }

    /// Payload at `offset`.
    pub fn payload(&self, offset: u32) -> Result<Value> {
        Ok(self.item(points_bin::PAYLOAD_OFFSETS, offset)?.payload()?)
    }

    /// Text fields at `offset` (`null` when the point has none).
    pub fn text(&self, offset: u32) -> Result<Value> {
        if self.points.len() < points_bin::WITH_TEXT {
            return Ok(Value::Null);
        }
        Ok(self.item(points_bin::TEXT_OFFSETS, offset)?.payload()?)
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> u64 {
        fn size(dir: &Path) -> u64 {
            let Ok(rd) = fs_err::read_dir(dir) else { return 0 };
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        size(&self.dir)
    }

    /// Bytes this segment needs resident for fast search: vectors (or codes) and links.
    pub fn memory_bytes(&self) -> usize {
        let hot = match &self.sq8 {
            Some(sq) => sq.data_bytes(),
            None => self.vectors.data_bytes(),
        };
        hot + self.graph.links_bytes()
    }

    /// The `k` closest admitted points to a prepared `query`. A point is admitted
    /// when it is in `allowed` (if given) and not in `deleted`.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        strategy: Strategy,
        allowed: Option<&Bitset>,
        deleted: &Bitset,
    ) -> Vec<Neighbor> {
        let vectors = self.vectors.as_slice();
        let f32_scorer = F32Scorer::new(query, vectors, self.dim, self.metric);
        let exact = |i: u32| self.metric.distance(query, &vectors[i as usize * self.dim..][..self.dim]);
        match (strategy, allowed) {
            (Strategy::Exact, Some(allowed)) => {
                let mut top = topk::TopK::new(k);
                for i in allowed.iter().filter(|&i| !deleted.contains(i)) {
                    top.push(Neighbor { distance: exact(i as u32), node: i as u32 });
                }
                top.into_sorted()
            }
            (Strategy::Exact, None) => topk::exact(self.n, k, exact, |i| !deleted.contains(i as usize)),
            (Strategy::Graph, _) => {
                let admit = |i: u32| !deleted.contains(i as usize) && allowed.is_none_or(|a| a.contains(i as usize));
                match &self.sq8 {
                    None => self.graph.search(&f32_scorer, k, ef, admit).0,
                    Some(sq) => {
                        let scorer = sq.scorer(query, self.metric);
                        let (cands, _) = self.graph.search(&scorer, ef.max(k), ef, admit);
                        let mut top = topk::TopK::new(k);
                        for c in cands {
                            top.push(Neighbor { distance: exact(c.node), node: c.node });
                        }
                        top.into_sorted()
                    }
                }
            }
        }
    }
}

/// Write a deletion bitmap for a segment of `n` points.
pub fn write_deletes(path: &Path, deleted: &Bitset) -> Result<()> {
    section::write(path, DELETES_MAGIC, deleted.len() as u64, &[bytemuck::cast_slice(deleted.as_words())])?;
    Ok(())
}

/// Read a deletion bitmap for a segment of `n` points.
pub fn read_deletes(path: &Path, n: usize) -> Result<Bitset> {
    let f = SectionFile::open(path, DELETES_MAGIC)?;
    if f.user() as usize != n {
        return Err(Error::CorruptSegment {
            path: path.to_owned(),
            reason: "bitmap size does not match the segment".into(),
        });
    }
    Ok(Bitset::from_words(f.slice::<u64>(DELETE_WORDS)?, n))
}
