//! Fixed-size blocks of token ids, and their compact binary file.
//!
//! File layout (all integers little-endian), 32-byte header then the ids:
//!
//! | bytes  | field                                        |
//! |--------|----------------------------------------------|
//! | 0..8   | magic `XPBLOCKS`                             |
//! | 8..12  | format version (u32, currently 1)            |
//! | 12..16 | token width in bytes (u32: 2 or 4)           |
//! | 16..24 | block size in tokens (u64, at least 1)       |
//! | 24..32 | number of blocks (u64)                       |
//! | 32..   | blocks × block size ids, each `width` bytes  |
//!
//! Ids are stored as u16 when every id fits (OPT's 50,272-entry vocabulary
//! does), otherwise as u32. The exact file length is implied by the header, so
//! truncation is always detected.

use std::io::Write;
use std::path::Path;

use super::DataError;

/// The first 8 bytes of every block file.
pub const BLOCK_FILE_MAGIC: &[u8; 8] = b"XPBLOCKS";
/// The block file format version this code writes and reads.
pub const BLOCK_FILE_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;

/// Token ids cut into blocks of `block_size`, stored contiguously.
/// Invariant: `block_size >= 1` and `tokens.len()` is a multiple of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocks {
    block_size: usize,
    tokens: Vec<u32>,
}

impl Blocks {
    /// Blocks from contiguous ids; errors unless they divide into whole blocks.
    pub fn new(block_size: usize, tokens: Vec<u32>) -> Result<Self, DataError> {
        if block_size == 0 {
            return Err(DataError::ZeroBlockSize { block_size });
        }
        if !tokens.len().is_multiple_of(block_size) {
            return Err(DataError::RaggedBlocks {
                len: tokens.len(),
                block_size,
            });
        }
        Ok(Self { block_size, tokens })
    }

    /// No blocks yet; add them with [`Blocks::push`].
    pub fn empty(block_size: usize) -> Result<Self, DataError> {
        Self::new(block_size, Vec::new())
    }

    /// Appends one block; errors if it is not exactly `block_size` ids long.
    pub fn push(&mut self, block: &[u32]) -> Result<(), DataError> {
        if block.len() != self.block_size {
            return Err(DataError::RaggedBlocks {
                len: block.len(),
                block_size: self.block_size,
            });
        }
        self.tokens.extend_from_slice(block);
        Ok(())
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.tokens.len() / self.block_size
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Block `i`. Panics if `i >= len()`, like slice indexing; use
    /// [`Blocks::get`] when `i` comes from outside.
    pub fn block(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.block_size..(i + 1) * self.block_size]
    }

    /// Block `i`, or None past the end.
    pub fn get(&self, i: usize) -> Option<&[u32]> {
        (i < self.len()).then(|| self.block(i))
    }

    /// The blocks in order.
    pub fn iter(&self) -> std::slice::ChunksExact<'_, u32> {
        self.tokens.chunks_exact(self.block_size)
    }

    /// All ids, block after block.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn into_tokens(self) -> Vec<u32> {
        self.tokens
    }

    /// The largest id, None when there are no blocks.
    pub fn max_id(&self) -> Option<u32> {
        self.tokens.iter().copied().max()
    }
}

impl<'a> IntoIterator for &'a Blocks {
    type Item = &'a [u32];
    type IntoIter = std::slice::ChunksExact<'a, u32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Writes `blocks` to `path` atomically: into a temporary file in the same
/// directory, then renamed over `path`, so readers never see a partial file.
pub fn write_blocks(path: &Path, blocks: &Blocks) -> Result<(), DataError> {
    let io_err = |e| DataError::io(path, e);
    let width: u32 = if blocks.max_id().is_some_and(|m| m > u32::from(u16::MAX)) {
        4
    } else {
        2
    };
    let mut bytes = Vec::with_capacity(HEADER_LEN + blocks.tokens.len() * width as usize);
    bytes.extend_from_slice(BLOCK_FILE_MAGIC);
    bytes.extend_from_slice(&BLOCK_FILE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&width.to_le_bytes());
    bytes.extend_from_slice(&(blocks.block_size as u64).to_le_bytes());
    bytes.extend_from_slice(&(blocks.len() as u64).to_le_bytes());
    for &id in &blocks.tokens {
        if width == 2 {
            // Checked above: every id fits in u16 when width is 2.
            bytes.extend_from_slice(&(id as u16).to_le_bytes());
        } else {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".blocks-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(&bytes).map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4-byte slice"))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8-byte slice"))
}

/// Reads a block file written by [`write_blocks`], validating the header and
/// the exact length; a truncated or corrupt file is an error naming the file.
pub fn read_blocks(path: &Path) -> Result<Blocks, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let not_blocks = |reason: String| DataError::NotABlockFile {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < HEADER_LEN {
        return Err(not_blocks(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if &bytes[..8] != BLOCK_FILE_MAGIC {
        return Err(not_blocks("wrong magic bytes".to_string()));
    }
    let version = read_u32(&bytes, 8);
    if version != BLOCK_FILE_VERSION {
        return Err(DataError::UnsupportedBlockFileVersion {
            path: path.to_path_buf(),
            found: version,
            supported: BLOCK_FILE_VERSION,
        });
    }
    let width = read_u32(&bytes, 12);
    if width != 2 && width != 4 {
        return Err(not_blocks(format!("token width {width}, expected 2 or 4")));
    }
    let block_size = read_u64(&bytes, 16);
    if block_size == 0 {
        return Err(not_blocks("block size 0".to_string()));
    }
    let num_blocks = read_u64(&bytes, 24);
    let expected = block_size
        .checked_mul(num_blocks)
        .and_then(|n| n.checked_mul(u64::from(width)))
        .and_then(|n| n.checked_add(HEADER_LEN as u64));
    let actual = bytes.len() as u64;
    if expected != Some(actual) {
        return Err(DataError::BlockFileLength {
            path: path.to_path_buf(),
            expected: expected.unwrap_or(u64::MAX),
            actual,
        });
    }
    let payload = &bytes[HEADER_LEN..];
    let tokens: Vec<u32> = if width == 2 {
        payload
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])))
            .collect()
    } else {
        payload
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    // The length check above makes these exact; usize conversions cannot fail
    // for a file that fitted in memory.
    Blocks::new(block_size as usize, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Blocks {
        Blocks::new(3, vec![2, 10, 11, 2, 50271, 7]).unwrap()
    }

    #[test]
    fn blocks_accessors() {
        let b = sample();
        assert_eq!(b.len(), 2);
        assert_eq!(b.block_size(), 3);
        assert_eq!(b.block(1), &[2, 50271, 7]);
        assert_eq!(b.get(2), None);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            vec![&[2, 10, 11][..], &[2, 50271, 7]]
        );
        assert_eq!((&b).into_iter().count(), 2);
        assert_eq!(b.max_id(), Some(50271));
        assert!(Blocks::new(3, vec![1, 2]).is_err());
        assert!(Blocks::new(0, vec![]).is_err());
        let mut e = Blocks::empty(2).unwrap();
        assert!(e.is_empty() && e.max_id().is_none());
        e.push(&[5, 6]).unwrap();
        assert!(e.push(&[5]).is_err());
        assert_eq!(e.tokens(), &[5, 6]);
    }

    #[test]
    fn round_trips_with_u16_and_u32_ids() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.blocks");
        write_blocks(&small, &sample()).unwrap();
        assert_eq!(std::fs::metadata(&small).unwrap().len(), 32 + 6 * 2);
        assert_eq!(read_blocks(&small).unwrap(), sample());

        let big = Blocks::new(2, vec![65535, 0, 65536, u32::MAX]).unwrap();
        let path = dir.path().join("big.blocks");
        write_blocks(&path, &big).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32 + 4 * 4);
        assert_eq!(read_blocks(&path).unwrap(), big);

        let empty = Blocks::empty(64).unwrap();
        let path = dir.path().join("empty.blocks");
        write_blocks(&path, &empty).unwrap();
        assert_eq!(read_blocks(&path).unwrap(), empty);
        // Only the final files remain: the temporary files were renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn header_layout_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        write_blocks(&path, &Blocks::new(2, vec![1, 258]).unwrap()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let mut expected = b"XPBLOCKS".to_vec();
        expected.extend([1, 0, 0, 0, 2, 0, 0, 0]);
        expected.extend([2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend([1, 0, 2, 1]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn corrupt_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.blocks");
        write_blocks(&path, &sample()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let check = |bytes: &[u8], expect: &str| {
            std::fs::write(&path, bytes).unwrap();
            let msg = read_blocks(&path).unwrap_err().to_string();
            assert!(msg.contains("data.blocks") && msg.contains(expect), "{msg}");
        };
        check(&good[..good.len() - 1], "header promises 44");
        check(&good[..10], "shorter than the 32-byte header");
        let mut longer = good.clone();
        longer.push(0);
        check(&longer, "is 45 bytes");
        let mut bad = good.clone();
        bad[0] = b'Y';
        check(&bad, "wrong magic");
        let mut bad = good.clone();
        bad[8] = 9;
        check(&bad, "version 9 is not supported");
        let mut bad = good.clone();
        bad[12] = 3;
        check(&bad, "token width 3");
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&0u64.to_le_bytes());
        check(&bad, "block size 0");
        let mut bad = good.clone();
        bad[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        check(&bad, "truncated or corrupt");
        let msg = read_blocks(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing"), "{msg}");
    }
}
