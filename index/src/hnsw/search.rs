//! The layer walk shared by construction and search.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Scorer, MAX_M};
use crate::topk::Neighbor;

/// Read access to links, implemented by the builder (under per-node locks) and
/// by the frozen graph (straight from the arrays).
pub(super) trait Links {
    /// Call `f` with the neighbours of `node` on `level`.
    fn with_neighbours<R>(&self, node: u32, level: usize, f: impl FnOnce(&[u32]) -> R) -> R;
}

/// Generation-stamped visited set: clearing is one increment, not a memset.
#[derive(Debug, Default)]
pub(super) struct Visited {
    marks: Vec<u16>,
    generation: u16,
}

impl Visited {
    pub(super) fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    #[inline]
    pub(super) fn insert(&mut self, i: u32) -> bool {
        let m = &mut self.marks[i as usize];
        let fresh = *m != self.generation;
        *m = self.generation;
        fresh
    }

    #[inline]
    pub(super) fn contains(&self, i: u32) -> bool {
        self.marks[i as usize] == self.generation
    }
}

/// Per-thread buffers reused across queries (no allocation per query).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    pub(super) visited: Visited,
    candidates: BinaryHeap<Reverse<Neighbor>>,
    results: BinaryHeap<Neighbor>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Run `f` with this thread's scratch buffers.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        // Re-entrant use (never expected): fall back to fresh buffers.
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Greedy descent on one level: move to the closest neighbour until none is closer.
pub(super) fn greedy<L: Links, S: Scorer>(links: &L, scorer: &S, mut cur: Neighbor, level: usize) -> Neighbor {
    loop {
        let next = links.with_neighbours(cur.node, level, |nbrs| {
            let mut best = cur;
            for &nb in nbrs {
                let d = scorer.distance(nb);
                if d < best.distance {
                    best = Neighbor { distance: d, node: nb };
                }
            }
            best
        });
        if next.node == cur.node {
            return cur;
        }
        cur = next;
    }
}

/// Beam search on one level from `entries`, keeping the `ef` closest admitted
/// nodes. Nodes that `admit` rejects are still walked through (so the graph
/// stays connected under filters and deletes) but never returned.
/// Returns the result closest first, and the number of distances computed.
#[allow(clippy::too_many_arguments)] // a hot inner loop: plain arguments, no bundling struct
pub(super) fn search_layer<L, S, A>(
    links: &L,
    scorer: &S,
    entries: &[Neighbor],
    ef: usize,
    level: usize,
    n: usize,
    admit: A,
    s: &mut Scratch,
) -> (Vec<Neighbor>, usize)
where
    L: Links,
    S: Scorer,
    A: Fn(u32) -> bool,
{
    s.visited.reset(n);
    s.candidates.clear();
    s.results.clear();
    let mut scored = 0;
    for &e in entries {
        if s.visited.insert(e.node) {
            s.candidates.push(Reverse(e));
            if admit(e.node) {
                s.results.push(e);
            }
        }
    }
    while s.results.len() > ef {
        s.results.pop();
    }
    while let Some(Reverse(c)) = s.candidates.pop() {
        if s.results.len() >= ef && s.results.peek().is_some_and(|w| c.distance > w.distance) {
            break;
        }
        let Scratch { visited, candidates, results } = &mut *s;
        links.with_neighbours(c.node, level, |nbrs| {
            debug_assert!(nbrs.len() <= 2 * MAX_M);
            for &nb in nbrs {
                if !visited.contains(nb) {
                    scorer.prefetch(nb);
                }
            }
            for &nb in nbrs {
                if !visited.insert(nb) {
                    continue;
                }
                let d = scorer.distance(nb);
                scored += 1;
                let full = results.len() >= ef;
                if !full || results.peek().is_some_and(|w| d < w.distance) {
                    let cand = Neighbor { distance: d, node: nb };
                    candidates.push(Reverse(cand));
                    if admit(nb) {
                        results.push(cand);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        });
    }
    let mut out: Vec<Neighbor> = s.results.drain().collect();
    out.sort_unstable();
    (out, scored)
}
