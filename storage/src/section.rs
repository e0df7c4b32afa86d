//! Immutable, checksummed files made of aligned sections, read in place
//! through `mmap`. Every segment file (vectors, graph, ids, payloads,
//! quantized codes, deletion bitmaps) uses this one layout.
//!
//! ## Layout (little-endian)
//!
//! | offset        | size   | field                                              |
//! |---------------|--------|----------------------------------------------------|
//! | 0             | 8      | magic: the file kind, e.g. `NKVECS\0\0`            |
//! | 8             | 4      | format version ([`FORMAT_VERSION`])                |
//! | 12            | 4      | section count `n` (at most [`MAX_SECTIONS`])       |
//! | 16            | 8      | user value (kind-specific, e.g. dimension)         |
//! | 24            | 20 × n | per section: offset `u64`, length `u64`, CRC32C `u32` |
//! | 24 + 20n      | 4      | CRC32C of all header bytes before it               |
//! | ...           |        | zero padding; each section starts 64-byte aligned  |
//!
//! Opening verifies the magic, version, header CRC, that every section lies
//! inside the file, and every section's CRC. Sections are then borrowed as
//! `&[u8]` (or cast to `&[u32]`/`&[f32]` through `bytemuck`, which checks
//! alignment) straight from the mapping: no copy, no parse.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::mmap::MappedBytes;
use crate::{Error, Result};

/// Current section-file format version.
pub const FORMAT_VERSION: u32 = 1;
/// Oldest section-file format version this build reads.
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Upper bound on sections per file.
pub const MAX_SECTIONS: usize = 64;
const ALIGN: usize = 64;

fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Encode a section file image in memory.
pub fn encode(magic: [u8; 8], user: u64, sections: &[&[u8]]) -> Vec<u8> {
    assert!(sections.len() <= MAX_SECTIONS, "too many sections");
    let header_len = 24 + 20 * sections.len() + 4;
    let mut offsets = Vec::with_capacity(sections.len());
    let mut pos = align_up(header_len);
    for s in sections {
        offsets.push(pos);
        pos = align_up(pos + s.len());
    }
    let mut out = Vec::with_capacity(pos);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    out.extend_from_slice(&user.to_le_bytes());
    for (s, off) in sections.iter().zip(&offsets) {
        out.extend_from_slice(&(*off as u64).to_le_bytes());
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(s).to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    for (s, off) in sections.iter().zip(&offsets) {
        out.resize(*off, 0);
        out.extend_from_slice(s);
    }
    out.resize(pos.max(out.len()), 0);
    out
}

/// Write a section file and `fsync` it (the caller syncs the directory).
pub fn write(path: &Path, magic: [u8; 8], user: u64, sections: &[&[u8]]) -> Result<()> {
    let bytes = encode(magic, user, sections);
    let mut f = fs_err::File::create(path)?;
    crate::fault::write_all("section.write", path, &mut f, &bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Validate a file image and return the user value and section ranges.
pub fn parse(bytes: &[u8], magic: [u8; 8]) -> Result<(u64, Vec<Range<usize>>), String> {
    let rd_u32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
    let rd_u64 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    if bytes.len() < 28 {
        return Err(format!("file too short ({} bytes)", bytes.len()));
    }
    if bytes[..8] != magic {
        return Err(format!("bad magic {:?}, expected {:?}", &bytes[..8], magic));
    }
    let version = rd_u32(8);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(format!("unsupported format version {version}"));
    }
    let n = rd_u32(12) as usize;
    if n > MAX_SECTIONS {
        return Err(format!("{n} sections exceeds the limit"));
    }
    let header_len = 24 + 20 * n;
    if bytes.len() < header_len + 4 {
        return Err("header truncated".into());
    }
    if crc32c::crc32c(&bytes[..header_len]) != rd_u32(header_len) {
        return Err("header checksum mismatch".into());
    }
    let user = rd_u64(16);
    let mut ranges = Vec::with_capacity(n);
    // Sections follow the header and each other, as `encode` lays them out: a
    // crafted offset must not alias the header or another section.
    let mut prev_end = align_up(header_len + 4);
    for i in 0..n {
        let at = 24 + 20 * i;
        let (off, len, crc) = (rd_u64(at), rd_u64(at + 8), rd_u32(at + 16));
        let end = off.checked_add(len).filter(|e| *e <= bytes.len() as u64);
        let Some(end) = end else {
            return Err(format!("section {i} lies outside the file"));
        };
        let range = off as usize..end as usize;
        if !(off as usize).is_multiple_of(ALIGN) {
            return Err(format!("section {i} is misaligned"));
        }
        if range.start < prev_end {
            return Err(format!("section {i} overlaps the header or the section before it"));
        }
        prev_end = range.end;
        if crc32c::crc32c(&bytes[range.clone()]) != crc {
            return Err(format!("section {i} checksum mismatch"));
        }
        ranges.push(range);
    }
    Ok((user, ranges))
}

/// An open, verified section file.
#[derive(Debug)]
pub struct SectionFile {
    path: PathBuf,
    bytes: MappedBytes,
    user: u64,
    sections: Vec<Range<usize>>,
}

impl SectionFile {
    /// Map and verify `path`, which must carry `magic`.
    pub fn open(path: &Path, magic: [u8; 8]) -> Result<Self> {
        let bytes = MappedBytes::open(path)?;
        let (user, sections) = parse(bytes.as_bytes(), magic).map_err(|reason| Error::corrupt(path, reason))?;
        Ok(Self { path: path.to_owned(), bytes, user, sections })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kind-specific value stored in the header.
    pub fn user(&self) -> u64 {
        self.user
    }

    /// Number of sections.
    pub fn len(&self) -> usize {
        self.sections.len()
    }

    /// True when the file has no sections.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// Section `i` as bytes.
    pub fn bytes(&self, i: usize) -> Result<&[u8]> {
        let r = self.sections.get(i).ok_or_else(|| Error::corrupt(&self.path, format!("missing section {i}")))?;
        Ok(&self.bytes.as_bytes()[r.clone()])
    }

    /// Section `i` cast to a slice of plain values (length and alignment checked).
    pub fn slice<T: bytemuck::Pod>(&self, i: usize) -> Result<&[T]> {
        bytemuck::try_cast_slice(self.bytes(i)?).map_err(|e| {
            Error::corrupt(&self.path, format!("section {i} cannot be read as {}: {e:?}", std::any::type_name::<T>()))
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MAGIC: [u8; 8] = *b"NKTEST\0\0";

    /// Rewrite section `i`'s offset and the header checksum.
    fn with_offset(mut bytes: Vec<u8>, i: usize, off: u64) -> Vec<u8> {
        let n = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        bytes[24 + 20 * i..32 + 20 * i].copy_from_slice(&off.to_le_bytes());
        let header_len = 24 + 20 * n;
        let crc = crc32c::crc32c(&bytes[..header_len]);
        bytes[header_len..header_len + 4].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Found by the `section_file` fuzz target: a section at offset 0 (inside
    /// the header) or over another section passed every check.
    #[test]
    fn sections_may_not_alias_the_header_or_each_other() {
        let good = encode(MAGIC, 7, &[b"", b"abc", b"defg"]);
        assert!(parse(&good, MAGIC).is_ok());
        // An empty section moved to offset 0: in bounds, aligned, right checksum.
        let e = parse(&with_offset(good.clone(), 0, 0), MAGIC).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
        // The last section moved onto the one before it.
        let (_, ranges) = parse(&good, MAGIC).unwrap();
        let e = parse(&with_offset(good.clone(), 2, ranges[1].start as u64), MAGIC).unwrap_err();
        assert!(e.contains("overlaps") || e.contains("checksum"), "{e}");
        // The empty first section placed after the later ones: out of order.
        assert!(parse(&with_offset(good, 0, ranges[2].start as u64), MAGIC).is_err());
    }

    fn arb_sections() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let size = prop_oneof![Just(0usize), Just(1), Just(63), Just(64), Just(65), 0usize..300];
        prop::collection::vec(size.prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)), 0..5)
    }

    proptest! {
        #[test]
        fn round_trips(sections in arb_sections(), user in any::<u64>()) {
            let refs: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
            let img = encode(MAGIC, user, &refs);
            let (u, ranges) = parse(&img, MAGIC).unwrap();
            prop_assert_eq!(u, user);
            for (r, s) in ranges.iter().zip(&sections) {
                prop_assert_eq!(&img[r.clone()], s.as_slice());
            }
        }

        #[test]
        fn truncation_is_detected(sections in arb_sections(), cut in any::<prop::sample::Index>()) {
            let refs: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
            let img = encode(MAGIC, 7, &refs);
            let cut = cut.index(img.len());
            let data_end = refs.iter().map(|s| s.len()).sum::<usize>();
            // Cutting into the header or into any section's bytes must fail.
            if let Ok((_, ranges)) = parse(&img[..cut], MAGIC) {
                prop_assert!(ranges.iter().all(|r| r.end <= cut));
                prop_assert!(data_end == 0 || ranges.iter().map(|r| r.len()).sum::<usize>() == data_end);
            }
        }

        #[test]
        fn bit_flips_are_detected(sections in arb_sections(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let refs: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
            let mut img = encode(MAGIC, 7, &refs);
            let i = at.index(img.len());
            img[i] ^= 1 << bit;
            let (_, ranges) = parse(&encode(MAGIC, 7, &refs), MAGIC).unwrap();
            let in_padding = i >= 24 + 20 * refs.len() + 4 && !ranges.iter().any(|r| r.contains(&i));
            // Padding bytes carry no data; every other flipped bit is caught.
            prop_assert!(in_padding || parse(&img, MAGIC).is_err());
        }
    }

    #[test]
    fn open_reads_sections_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let floats = [1.5f32, -2.0, 3.25];
        write(&path, MAGIC, 3, &[bytemuck::cast_slice(&floats), b"hello"]).unwrap();
        let f = SectionFile::open(&path, MAGIC).unwrap();
        assert_eq!(f.user(), 3);
        assert_eq!(f.slice::<f32>(0).unwrap(), &floats);
        assert_eq!(f.bytes(1).unwrap(), b"hello");
        assert!(f.bytes(2).is_err());
        assert!(SectionFile::open(&path, *b"NKOTHER\0").is_err());
    }
}
