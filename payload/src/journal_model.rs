//! The journal payload's records: one disk block each, at block `seq` (block 0 is left
//! alone), built from the sequence number alone so that any reader can tell a record that is
//! present and intact from one that is missing, stale or torn. Layout (little-endian):
//!
//! | bytes          | field                                              |
//! |----------------|----------------------------------------------------|
//! | 0..8           | magic `XJRNL001`                                   |
//! | 8..16          | seq (1, 2, ...)                                    |
//! | 16..24         | the record's byte offset on the disk (seq × block) |
//! | 24..block-8    | `fill_byte(seq, i)` for byte i                     |
//! | block-8..block | FNV-1a 64 of bytes 0..block-8                      |
//!
//! tools/lab/journal-check.py reads disk images with its own implementation of this table.

pub const MAGIC: [u8; 8] = *b"XJRNL001";

/// Byte `i` of record `seq`'s filler.
pub fn fill_byte(seq: u64, i: usize) -> u8 {
    ((seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)) >> 56) as u8
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Writes record `seq` into `out` (one block).
pub fn encode(seq: u64, out: &mut [u8]) {
    let n = out.len();
    out[..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[16..24].copy_from_slice(&(seq * n as u64).to_le_bytes());
    for (i, b) in out[24..n - 8].iter_mut().enumerate() {
        *b = fill_byte(seq, 24 + i);
    }
    let sum = fnv1a64(&out[..n - 8]);
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

pub fn check(seq: u64, block: &[u8]) -> Found {
    let n = block.len();
    if n < 64 || block[..8] != MAGIC {
        return Found::Empty;
    }
    let word = |o: usize| u64::from_le_bytes(block[o..o + 8].try_into().unwrap_or([0; 8]));
    if word(8) != seq {
        return Found::Bad("another record's sequence number");
    }
    if word(16) != seq * n as u64 {
        return Found::Bad("another record's position");
    }
    if word(n - 8) != fnv1a64(&block[..n - 8]) {
        return Found::Bad("checksum mismatch");
    }
    if (24..n - 8).any(|i| block[i] != fill_byte(seq, i)) {
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
        assert_eq!(check(1, &b), Found::Empty);
        encode(7, &mut b);
        assert_eq!(check(7, &b), Found::Good);
        assert_eq!(check(8, &b), Found::Bad("another record's sequence number"));
        let mut torn = b;
        torn[300] ^= 1;
        assert_eq!(check(7, &torn), Found::Bad("checksum mismatch"));
        // Two values the dom0 checker (tools/lab/journal-check.py) computes the same way.
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fill_byte(1, 24), 0x6e);
    }
}
