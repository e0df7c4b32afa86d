//! Arrays that live either in memory or in a verified, mmap'd section file.

use std::sync::Arc;

use naksha_storage::section::SectionFile;

/// A `[T]` owned in memory or borrowed from a mapped [`SectionFile`] section.
#[derive(Debug, Clone)]
pub enum Stored<T> {
    /// Built in this process.
    Owned(Arc<Vec<T>>),
    /// Section `1` of the file, validated (length and alignment) when opened.
    Mapped(Arc<SectionFile>, usize),
}

impl<T: bytemuck::Pod> Stored<T> {
    /// From an owned vector.
    pub fn owned(v: Vec<T>) -> Self {
        Stored::Owned(Arc::new(v))
    }

    /// Borrow section `i` of `file`, checking that it casts to `[T]`.
    pub fn mapped(file: &Arc<SectionFile>, i: usize) -> naksha_storage::Result<Self> {
        file.slice::<T>(i)?;
        Ok(Stored::Mapped(file.clone(), i))
    }

    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        match self {
            Stored::Owned(v) => v,
            // Checked in `mapped`, and the mapping never changes afterwards.
            Stored::Mapped(f, i) => f.slice::<T>(*i).unwrap_or(&[]),
        }
    }

    /// Bytes held in memory (mapped data counts as page cache, not here).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Stored::Owned(v) => v.len() * std::mem::size_of::<T>(),
            Stored::Mapped(..) => 0,
        }
    }

    /// Total size of the data in bytes, wherever it lives.
    pub fn data_bytes(&self) -> usize {
        std::mem::size_of_val(self.as_slice())
    }
}
