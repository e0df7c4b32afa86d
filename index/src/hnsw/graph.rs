//! The frozen graph and its file format.
//!
//! ## File `graph.hnsw` (a [`naksha_storage::section`] file, magic `NKHNSW\0\0`)
//!
//! The header's user value is the graph layout version ([`FORMAT_VERSION`]).
//!
//! | section | type  | content                                                          |
//! |---------|-------|------------------------------------------------------------------|
//! | 0       | `u32` | `[m, n, entry_node, entry_level, has_entry]`                      |
//! | 1       | `u8`  | level of each node (`n`)                                         |
//! | 2       | `u32` | level-0 lists: `n × (1 + 2m)`, each `[count, neighbours..]`       |
//! | 3       | `u32` | per node, first upper block index, or `u32::MAX` for level-0 nodes |
//! | 4       | `u32` | upper blocks of `1 + m` words; node `i`, level `l ≥ 1` is block `offsets[i] + l - 1` |
//!
//! All integers are little-endian. Opening validates every count, neighbour id
//! and level reference, so a damaged file is an error at open, never an
//! out-of-bounds read during search. The sections are used in place from the
//! mapping: a reopened collection does not rebuild or copy its graph.

use std::path::Path;
use std::sync::Arc;

use naksha_storage::section::{self, SectionFile};

use super::search::{greedy, search_layer, with_scratch, Links};
use super::{Scorer, MAX_M, NONE};
use crate::stored::Stored;
use crate::topk::Neighbor;
use crate::{Error, Result};

/// File magic of a graph file.
pub const MAGIC: [u8; 8] = *b"NKHNSW\0\0";
/// Graph layout version written by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Oldest graph layout version this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;

/// Sections of a graph file, in order.
mod sections {
    /// `u32` × 5: m, node count, entry node, entry level, has-entry flag.
    pub const META: usize = 0;
    /// `u8` level of each node.
    pub const LEVELS: usize = 1;
    /// `u32` level-0 links, `2m + 1` per node (count, then links).
    pub const L0: usize = 2;
    /// `u32` offset of each node's upper-level links.
    pub const UPPER_OFFSETS: usize = 3;
    /// `u32` upper-level links.
    pub const UPPER: usize = 4;
}

/// An immutable HNSW graph.
#[derive(Debug, Clone)]
pub struct Graph {
    m: usize,
    entry: Option<(u32, u8)>,
    levels: Stored<u8>,
    l0: Stored<u32>,
    upper_offsets: Stored<u32>,
    upper: Stored<u32>,
}

struct View<'a> {
    m: usize,
    l0: &'a [u32],
    upper_offsets: &'a [u32],
    upper: &'a [u32],
}

impl Links for View<'_> {
    #[inline]
    fn with_neighbours<R>(&self, node: u32, level: usize, f: impl FnOnce(&[u32]) -> R) -> R {
        let list = if level == 0 {
            let s = 2 * self.m + 1;
            &self.l0[node as usize * s..(node as usize + 1) * s]
        } else {
            let s = self.m + 1;
            let block = self.upper_offsets[node as usize] as usize + level - 1;
            &self.upper[block * s..(block + 1) * s]
        };
        f(&list[1..1 + list[0] as usize])
    }
}

impl Graph {
    pub(super) fn from_parts(
        m: usize,
        entry: Option<(u32, u8)>,
        levels: Vec<u8>,
        l0: Vec<u32>,
        upper_offsets: Vec<u32>,
        upper: Vec<u32>,
    ) -> Self {
        Self {
            m,
            entry,
            levels: Stored::owned(levels),
            l0: Stored::owned(l0),
            upper_offsets: Stored::owned(upper_offsets),
            upper: Stored::owned(upper),
        }
    }

    fn view(&self) -> View<'_> {
        View {
            m: self.m,
            l0: self.l0.as_slice(),
            upper_offsets: self.upper_offsets.as_slice(),
            upper: self.upper.as_slice(),
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.levels.as_slice().len()
    }

    /// True when the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `m` the graph was built with.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Bytes of link data (levels, lists, offsets).
    pub fn links_bytes(&self) -> usize {
        self.levels.data_bytes() + self.l0.data_bytes() + self.upper_offsets.data_bytes() + self.upper.data_bytes()
    }

    /// Bytes held on the heap (zero for a mapped graph).
    pub fn heap_bytes(&self) -> usize {
        self.levels.heap_bytes() + self.l0.heap_bytes() + self.upper_offsets.heap_bytes() + self.upper.heap_bytes()
    }

    /// Level-0 neighbours of `node` (for tests and diagnostics).
    pub fn neighbours(&self, node: u32) -> Vec<u32> {
        self.view().with_neighbours(node, 0, |n| n.to_vec())
    }

    /// The `k` closest nodes that `admit` accepts, searching with beam width `ef`.
    /// Also returns how many distances were computed.
    pub fn search<S, A>(&self, scorer: &S, k: usize, ef: usize, admit: A) -> (Vec<Neighbor>, usize)
    where
        S: Scorer,
        A: Fn(u32) -> bool,
    {
        let Some((ep, max_level)) = self.entry else { return (Vec::new(), 0) };
        let view = self.view();
        let mut cur = Neighbor { distance: scorer.distance(ep), node: ep };
        for level in (1..=max_level as usize).rev() {
            cur = greedy(&view, scorer, cur, level);
        }
        let (mut out, scored) =
            with_scratch(|s| search_layer(&view, scorer, &[cur], ef.max(k), 0, self.len(), admit, s));
        out.truncate(k);
        (out, scored)
    }

    /// Write the graph to `path` (fsynced).
    pub fn write(&self, path: &Path) -> Result<()> {
        let (entry_node, entry_level, has_entry) = match self.entry {
            Some((n, l)) => (n, l as u32, 1),
            None => (0, 0, 0),
        };
        let meta = [self.m as u32, self.len() as u32, entry_node, entry_level, has_entry];
        section::write(
            path,
            MAGIC,
            FORMAT_VERSION as u64,
            &[
                bytemuck::cast_slice(&meta),
                self.levels.as_slice(),
                bytemuck::cast_slice(self.l0.as_slice()),
                bytemuck::cast_slice(self.upper_offsets.as_slice()),
                bytemuck::cast_slice(self.upper.as_slice()),
            ],
        )?;
        Ok(())
    }

    /// Map the graph file at `path` and validate it; the links are used in place.
    pub fn open(path: &Path) -> Result<Self> {
        let file = Arc::new(SectionFile::open(path, MAGIC)?);
        let corrupt = |reason: String| Error::CorruptSegment { path: path.to_owned(), reason };
        let version = file.user() as u32;
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(corrupt(format!("unsupported graph version {version}")));
        }
        let meta: [u32; 5] =
            file.slice::<u32>(sections::META)?.try_into().map_err(|_| corrupt("bad meta section".into()))?;
        let [m, n, entry_node, entry_level, has_entry] = meta;
        let graph = Graph {
            m: m as usize,
            entry: (has_entry == 1).then_some((entry_node, entry_level as u8)),
            levels: Stored::mapped(&file, sections::LEVELS)?,
            l0: Stored::mapped(&file, sections::L0)?,
            upper_offsets: Stored::mapped(&file, sections::UPPER_OFFSETS)?,
            upper: Stored::mapped(&file, sections::UPPER)?,
        };
        graph.validate(n as usize).map_err(corrupt)?;
        Ok(graph)
    }

    fn validate(&self, n: usize) -> std::result::Result<(), String> {
        let (m, levels) = (self.m, self.levels.as_slice());
        if !(2..=MAX_M).contains(&m) {
            return Err(format!("m = {m} out of range"));
        }
        if levels.len() != n || self.upper_offsets.as_slice().len() != n || self.l0.as_slice().len() != n * (2 * m + 1)
        {
            return Err("section sizes do not match the node count".into());
        }
        if !self.upper.as_slice().len().is_multiple_of(m + 1) {
            return Err("upper blocks are not whole".into());
        }
        let blocks = self.upper.as_slice().len() / (m + 1);
        match self.entry {
            Some((e, l)) if (e as usize) < n && levels[e as usize] == l => {}
            None if n == 0 => {}
            _ => return Err("bad entry point".into()),
        }
        for (i, &off) in self.upper_offsets.as_slice().iter().enumerate() {
            let level = levels[i] as usize;
            if level == 0 && off != NONE {
                continue; // unused offset; harmless
            }
            if level > 0 && (off as usize).checked_add(level).is_none_or(|end| end > blocks) {
                return Err(format!("node {i}: upper blocks out of range"));
            }
        }
        let view = self.view();
        for node in 0..n as u32 {
            for level in 0..=levels[node as usize] as usize {
                let cap = if level == 0 { 2 * m } else { m };
                let ok = {
                    let list = if level == 0 {
                        &view.l0[node as usize * (2 * m + 1)..]
                    } else {
                        let block = view.upper_offsets[node as usize] as usize + level - 1;
                        &view.upper[block * (m + 1)..]
                    };
                    let count = list[0] as usize;
                    count <= cap
                        && list[1..1 + count]
                            .iter()
                            .all(|&nb| (nb as usize) < n && levels[nb as usize] as usize >= level)
                };
                if !ok {
                    return Err(format!("node {node}: bad links on level {level}"));
                }
            }
        }
        Ok(())
    }
}
