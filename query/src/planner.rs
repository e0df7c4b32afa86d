//! The choice between walking the graph and scanning candidates exactly.
//!
//! A filtered graph walk must visit about `ef / selectivity` admitted-or-not
//! nodes (times a constant for the graph's fan-out) before it has `ef`
//! admitted results; an exact scan costs one distance per candidate. The
//! planner picks the cheaper. With few candidates (restrictive filters) the
//! exact scan wins and recall is perfect; with many, the walk wins and keeps
//! recall high because filtered-out nodes are still walked through.

use naksha_index::segment::Strategy;

/// Planner settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planner {
    /// Estimated distance computations of a walk per unit of `ef` at
    /// selectivity 1. Zero forces the graph whenever one exists; infinity forces exact scans.
    pub graph_cost_per_ef: f64,
}

impl Default for Planner {
    fn default() -> Self {
        Self { graph_cost_per_ef: 12.0 }
    }
}

impl Planner {
    /// Strategy for a segment with `live` points of which `candidates` pass the filter.
    pub fn choose(&self, live: usize, candidates: usize, ef: usize, k: usize) -> Strategy {
        if candidates <= k || live == 0 {
            return Strategy::Exact;
        }
        let selectivity = candidates as f64 / live as f64;
        let graph_cost = self.graph_cost_per_ef * ef.max(k) as f64 / selectivity;
        if graph_cost >= candidates as f64 {
            Strategy::Exact
        } else {
            Strategy::Graph
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restrictive_filters_scan_and_broad_ones_walk() {
        let p = Planner::default();
        assert_eq!(p.choose(20_000, 20_000, 128, 10), Strategy::Graph);
        assert_eq!(p.choose(20_000, 10_000, 128, 10), Strategy::Graph);
        assert_eq!(p.choose(20_000, 200, 128, 10), Strategy::Exact);
        assert_eq!(p.choose(1_000_000, 100_000, 128, 10), Strategy::Graph);
        assert_eq!(p.choose(500, 500, 128, 10), Strategy::Exact);
        assert_eq!(p.choose(100, 5, 128, 10), Strategy::Exact);
        assert_eq!(Planner { graph_cost_per_ef: 0.0 }.choose(20_000, 20, 128, 10), Strategy::Graph);
    }
}
