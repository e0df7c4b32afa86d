//! A fixed-size bitset over point offsets in a segment.

/// Bitset of `len` bits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// All bits clear.
    pub fn new(len: usize) -> Self {
        Self { words: vec![0; len.div_ceil(64)], len }
    }

    /// All bits set.
    pub fn full(len: usize) -> Self {
        let mut b = Self { words: vec![u64::MAX; len.div_ceil(64)], len };
        b.clear_tail();
        b
    }

    /// From raw words (e.g. a persisted deletion bitmap); bits past `len` are ignored.
    pub fn from_words(words: &[u64], len: usize) -> Self {
        let mut w = words.to_vec();
        w.resize(len.div_ceil(64), 0);
        let mut b = Self { words: w, len };
        b.clear_tail();
        b
    }

    fn clear_tail(&mut self) {
        if !self.len.is_multiple_of(64) {
            if let Some(last) = self.words.last_mut() {
                *last &= (1u64 << (self.len % 64)) - 1;
            }
        }
    }

    /// Raw words, for persistence.
    pub fn as_words(&self) -> &[u64] {
        &self.words
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the bitset has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grow to `len` bits (new bits clear).
    pub fn grow(&mut self, len: usize) {
        if len > self.len {
            self.len = len;
            self.words.resize(len.div_ceil(64), 0);
        }
    }

    /// Whether bit `i` is set (false past the end).
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Set bit `i`; returns whether it was newly set.
    pub fn insert(&mut self, i: usize) -> bool {
        let was = self.contains(i);
        self.words[i / 64] |= 1 << (i % 64);
        !was
    }

    /// Clear bit `i`.
    pub fn remove(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    /// Number of set bits.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// `self &= other`.
    pub fn and(&mut self, other: &Bitset) {
        self.words.iter_mut().zip(&other.words).for_each(|(a, b)| *a &= b);
    }

    /// `self |= other`.
    pub fn or(&mut self, other: &Bitset) {
        self.words.iter_mut().zip(&other.words).for_each(|(a, b)| *a |= b);
    }

    /// `self &= !other`.
    pub fn and_not(&mut self, other: &Bitset) {
        self.words.iter_mut().zip(&other.words).for_each(|(a, b)| *a &= !b);
    }

    /// Offsets of set bits, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let t = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + t)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut a = Bitset::full(70);
        assert_eq!(a.count(), 70);
        let mut b = Bitset::new(70);
        b.insert(3);
        b.insert(69);
        a.and_not(&b);
        assert_eq!(a.count(), 68);
        assert!(!a.contains(69) && a.contains(68) && !a.contains(70));
        b.or(&Bitset::from_words(&[1], 70));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![0, 3, 69]);
        b.grow(200);
        assert!(b.insert(150) && !b.insert(150));
    }
}
