//! Length-bucketed batching.
//!
//! A BERT forward pass costs about `rows × seq_len` for the matmuls and
//! `rows × seq_len²` for attention, where every row is padded to the longest
//! sequence in its batch. Sorting the inputs by token length and cutting the
//! sorted order into batches whose padded size stays under a token budget keeps
//! padding small while the matmuls stay large.

/// Limits for one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most sequences in one batch.
    pub max_rows: usize,
    /// Most padded tokens (`rows × longest`) in one batch.
    pub max_tokens: usize,
}

impl BatchLimits {
    /// For the CPU encoder, which packs sequences without padding: smaller
    /// batches keep a batch's activations in the last-level cache (measured
    /// ~5 % faster than the default on the Debian bench), and whole batches run
    /// side by side, so there should be at least one per core.
    pub const PACKED: Self = Self { max_rows: 32, max_tokens: 2048 };
}

/// For padded batches (the Candle path): larger matmuls.
impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_rows: 64, max_tokens: 8192 }
    }
}

/// Plans batches for sequences of the given token `lengths`: returns groups of
/// input indices, each group sorted by length, every index exactly once.
///
/// A single sequence longer than `max_tokens` still gets a batch of its own.
pub fn plan(lengths: &[usize], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending, so the newcomer is the longest in the batch.
        let padded = (current.len() + 1) * lengths[i].max(1);
        if !current.is_empty() && (current.len() >= limits.max_rows.max(1) || padded > limits.max_tokens) {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once_and_budget_respected() {
        let lengths: Vec<usize> = (0..500).map(|i| (i * 37) % 250 + 1).collect();
        let limits = BatchLimits { max_rows: 16, max_tokens: 1024 };
        let batches = plan(&lengths, limits);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(b.len() <= 16);
            assert!(b.len() * longest <= 1024 || b.len() == 1, "batch over budget: {} × {longest}", b.len());
        }
        // Sorting means little padding: under 10% of the tokens are padding here.
        let real: usize = lengths.iter().sum();
        let padded: usize = batches.iter().map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap()).sum();
        assert!((padded - real) as f64 / (real as f64) < 0.10, "padding {padded} vs {real}");
    }

    #[test]
    fn oversized_sequence_gets_its_own_batch() {
        let batches = plan(&[5, 5000, 5], BatchLimits { max_rows: 8, max_tokens: 100 });
        assert_eq!(batches, vec![vec![0, 2], vec![1]]);
        assert!(plan(&[], BatchLimits::default()).is_empty());
    }
}
