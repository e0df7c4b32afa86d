//! Query modes and the fusion of a vector ranking with a text ranking.
//!
//! `hybrid` search runs both sides over the same admitted points (filters and
//! deletions apply to each side before fusion), takes a deeper candidate list
//! from each, and merges them:
//!
//! - **RRF** (reciprocal rank fusion): `score = Σ 1 / (k + rank)`, ranks from 1,
//!   summed over the sides that returned the point. Scale-free; `k` (default 60)
//!   damps the weight of the very top ranks.
//! - **Weighted**: each side's scores are min-max normalised to `[0, 1]` over its
//!   candidates (higher is better; a side whose scores are all equal gives 1),
//!   then `score = w · vector + (1 − w) · text`; a point missing from a side
//!   gets 0 there (as does the side's lowest-scored candidate).

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which signal ranks the results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Nearest vectors (the query vector, or the query text embedded).
    Vector,
    /// BM25 over the collection's `text_fields`.
    Text,
    /// Both, fused.
    Hybrid,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "vector" => Ok(Mode::Vector),
            "text" => Ok(Mode::Text),
            "hybrid" => Ok(Mode::Hybrid),
            other => Err(Error::InvalidArgument(format!("unknown mode {other:?} (vector, text or hybrid)"))),
        }
    }
}

/// RRF's rank offset `k` unless a request says otherwise.
pub const DEFAULT_RRF_K: f32 = 60.0;
/// Weight of the vector side in weighted fusion unless a request says otherwise.
pub const DEFAULT_VECTOR_WEIGHT: f32 = 0.5;

fn rrf_k() -> f32 {
    DEFAULT_RRF_K
}

fn half() -> f32 {
    DEFAULT_VECTOR_WEIGHT
}

/// How `hybrid` merges its two rankings: `{"method": "rrf", "k": 60}` or
/// `{"method": "weighted", "vector_weight": 0.7}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k`.
    Rrf {
        /// Rank offset (default 60).
        #[serde(default = "rrf_k")]
        k: f32,
    },
    /// Per-side min-max normalised scores, weighted.
    Weighted {
        /// Weight of the vector side in `[0, 1]` (the text side gets the rest).
        #[serde(default = "half")]
        vector_weight: f32,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: rrf_k() }
    }
}

impl Fusion {
    /// Rejects out-of-range parameters.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Fusion::Rrf { k } if !(k.is_finite() && (0.0..=1e6).contains(&k)) => {
                Err(Error::InvalidArgument("fusion.k must be a number between 0 and 1000000".into()))
            }
            Fusion::Weighted { vector_weight: w } if !(w.is_finite() && (0.0..=1.0).contains(&w)) => {
                Err(Error::InvalidArgument("fusion.vector_weight must be between 0 and 1".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Merges two rankings (each best first, higher score better) into one, best
/// first. Ties keep the order in which points were first seen (vector side first).
pub fn fuse<K: Copy + Eq + Hash>(vector: &[(f32, K)], text: &[(f32, K)], fusion: Fusion) -> Vec<(f32, K)> {
    let mut order: Vec<(f32, K)> = Vec::with_capacity(vector.len() + text.len());
    let mut at: HashMap<K, usize> = HashMap::with_capacity(order.capacity());
    let mut add = |key: K, s: f32| match at.get(&key) {
        Some(&i) => order[i].0 += s,
        None => {
            at.insert(key, order.len());
            order.push((s, key));
        }
    };
    match fusion {
        Fusion::Rrf { k } => {
            for side in [vector, text] {
                for (rank, &(_, key)) in side.iter().enumerate() {
                    add(key, 1.0 / (k + rank as f32 + 1.0));
                }
            }
        }
        Fusion::Weighted { vector_weight } => {
            for (side, w) in [(vector, vector_weight), (text, 1.0 - vector_weight)] {
                let (lo, hi) =
                    side.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(s, _)| (lo.min(s), hi.max(s)));
                for &(s, key) in side {
                    let norm = if hi > lo { (s - lo) / (hi - lo) } else { 1.0 };
                    add(key, w * norm);
                }
            }
        }
    }
    order.sort_by(|a, b| b.0.total_cmp(&a.0));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[(f32, char)]) -> Vec<char> {
        v.iter().map(|x| x.1).collect()
    }

    #[test]
    fn rrf_by_hand() {
        let vector = [(0.9, 'a'), (0.8, 'b'), (0.1, 'c')];
        let text = [(12.0, 'c'), (3.0, 'a')];
        let fused = fuse(&vector, &text, Fusion::Rrf { k: 60.0 });
        // a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62.
        assert_eq!(keys(&fused), vec!['a', 'c', 'b']);
        let (a, c, b) = (1.0 / 61.0 + 1.0 / 62.0, 1.0 / 63.0 + 1.0 / 61.0, 1.0 / 62.0);
        for (got, want) in fused.iter().map(|x| x.0).zip([a, c, b]) {
            assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        }
        // k = 0: the top of each side dominates; ties keep first-seen order.
        let fused = fuse(&[(1.0, 'x'), (0.5, 'y')], &[(1.0, 'y'), (0.5, 'x')], Fusion::Rrf { k: 0.0 });
        assert_eq!(fused, vec![(1.5, 'x'), (1.5, 'y')]);
    }

    #[test]
    fn weighted_normalises_each_side() {
        // Vector scores in [0.2, 0.6], text in [1, 21]: both become [0, 1].
        let vector = [(0.6, 'a'), (0.4, 'b'), (0.2, 'c')];
        let text = [(21.0, 'c'), (11.0, 'b'), (1.0, 'd')];
        let fused = fuse(&vector, &text, Fusion::Weighted { vector_weight: 0.7 });
        // a: 0.7·1 = 0.7; b: 0.7·0.5 + 0.3·0.5 = 0.5; c: 0 + 0.3·1 = 0.3; d: 0.
        let want = [(0.7, 'a'), (0.5, 'b'), (0.3, 'c'), (0.0, 'd')];
        assert_eq!(keys(&fused), keys(&want));
        for (got, want) in fused.iter().zip(want) {
            assert!((got.0 - want.0).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        // Weight 1 is vector order; a side of equal scores normalises to 1.
        let fused = fuse(&vector, &text, Fusion::Weighted { vector_weight: 1.0 });
        assert_eq!(keys(&fused)[..3], ['a', 'b', 'c']);
        let fused = fuse(&[(5.0, 'p'), (5.0, 'q')], &[], Fusion::Weighted { vector_weight: 0.5 });
        assert_eq!(fused, vec![(0.5, 'p'), (0.5, 'q')]);
    }

    #[test]
    fn one_side_empty_keeps_the_other_order() {
        let text = [(3.0, 'a'), (2.0, 'b'), (1.0, 'c')];
        for f in [Fusion::default(), Fusion::Weighted { vector_weight: 0.3 }] {
            assert_eq!(keys(&fuse(&[], &text, f)), vec!['a', 'b', 'c']);
        }
    }

    #[test]
    fn parameters_and_json() {
        assert!(Fusion::Rrf { k: -1.0 }.validate().is_err());
        assert!(Fusion::Rrf { k: f32::NAN }.validate().is_err());
        assert!(Fusion::Weighted { vector_weight: 1.5 }.validate().is_err());
        assert!(Fusion::Weighted { vector_weight: 0.0 }.validate().is_ok());
        let f: Fusion = serde_json::from_str(r#"{"method": "weighted", "vector_weight": 0.7}"#).unwrap();
        assert_eq!(f, Fusion::Weighted { vector_weight: 0.7 });
        let f: Fusion = serde_json::from_str(r#"{"method": "rrf"}"#).unwrap();
        assert_eq!(f, Fusion::default());
        assert!(serde_json::from_str::<Fusion>(r#"{"method": "rrf", "kk": 1}"#).is_err());
        assert!(serde_json::from_str::<Fusion>(r#"{"method": "max"}"#).is_err());
        assert!("fuzzy".parse::<Mode>().is_err());
        assert_eq!("hybrid".parse::<Mode>().unwrap(), Mode::Hybrid);
    }
}
