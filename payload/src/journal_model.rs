//! The journal payload's records: one disk block each, record `seq` at block `block_of(seq,
//! ring)` (block 0 is left alone; with a ring of R blocks, record R + 1 overwrites record 1),
//! built from the sequence number alone, so that any reader can tell a record that is present
//! and intact from one that is missing, stale or torn. Layout (little-endian):
//!
//! | bytes          | field                                                    |
//! |----------------|----------------------------------------------------------|
//! | 0..8           | magic `XJRNL001`                                         |
//! | 8..16          | seq (1, 2, ...)                                          |
//! | 16..24         | the record's byte offset on the disk (block × block size) |
//! | 24..block-8    | `filler_word(seq)`, repeated                             |
//! | block-8..block | CRC-32 (IEEE, as zlib.crc32) of bytes 0..block-8, as u64 |
//!
//! tools/lab/journal-check.py reads disk images with its own implementation of this table.

pub const MAGIC: [u8; 8] = *b"XJRNL001";

/// The block record `seq` (1, 2, ...) lives in, in a ring of `ring` blocks from block 1.
pub fn block_of(seq: u64, ring: u64) -> u64 {
    (seq - 1) % ring + 1
}

/// The word record `seq`'s filler repeats (splitmix64 of seq).
pub fn filler_word(seq: u64) -> u64 {
    let mut x = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Writes record `seq`, which lives at block `block`, into `out` (one block: a multiple of 8
/// bytes, at least 64).
pub fn encode(seq: u64, block: u64, out: &mut [u8]) {
    let n = out.len();
    out[..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..24].copy_from_slice(&(block * n as u64).to_le_bytes());
    let w = filler_word(seq).to_le_bytes();
    for chunk in out[24..n - 8].chunks_exact_mut(8) {
        chunk.copy_from_slice(&w);
    }
    let sum = crc32(&out[..n - 8]) as u64;
    out[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// What the block where record `seq` belongs holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Record `seq`, intact.
    Good,
    /// No record (no magic): the journal's end.
    Empty,
    /// A record that is not record `seq` intact.
    Bad(&'static str),
}

/// The record's sequence number, if `data` holds an intact record written at `block`.
pub fn decode(block: u64, data: &[u8]) -> Option<u64> {
    let seq = u64::from_le_bytes(data.get(8..16)?.try_into().ok()?);
    (seq >= 1 && check(seq, block, data) == Found::Good).then_some(seq)
}

pub fn check(seq: u64, at: u64, block: &[u8]) -> Found {
    let n = block.len();
    if n < 64 || block[..8] != MAGIC {
        return Found::Empty;
    }
    let word = |o: usize| u64::from_le_bytes(block[o..o + 8].try_into().unwrap_or([0; 8]));
    if word(8) != seq {
        return Found::Bad("another record's sequence number");
    }
    if word(16) != at * n as u64 {
        return Found::Bad("another record's position");
    }
    if word(n - 8) != crc32(&block[..n - 8]) as u64 {
        return Found::Bad("checksum mismatch");
    }
    let w = filler_word(seq);
    if (24..n - 8).step_by(8).any(|o| word(o) != w) {
        return Found::Bad("contents differ");
    }
    Found::Good
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_check_and_damage_is_named() {
        let mut b = [0u8; 512];
        assert_eq!(check(1, 1, &b), Found::Empty);
        encode(7, 7, &mut b);
        assert_eq!(check(7, 7, &b), Found::Good);
        assert_eq!(decode(7, &b), Some(7));
        assert_eq!(check(8, 8, &b), Found::Bad("another record's sequence number"));
        assert_eq!(check(7, 3, &b), Found::Bad("another record's position"));
        let mut torn = b;
        torn[300] ^= 1;
        assert_eq!(check(7, 7, &torn), Found::Bad("checksum mismatch"));
        assert_eq!(decode(7, &torn), None);
        assert_eq!((block_of(1, 4), block_of(4, 4), block_of(5, 4)), (1, 4, 1));
        // Values dom0's checker (tools/lab/journal-check.py, zlib) computes the same way.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(filler_word(1), 0x910a_2dec_8902_5cc1);
    }
}
