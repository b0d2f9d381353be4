//! The ticker's deterministic memory workload: fill a buffer, mutate it once per tick, and
//! checksum it. The host checker runs the same code to predict every TICK line's checksum,
//! so a page lost or corrupted across save/restore shows up as a mismatch.

/// Bytes of memory the ticker fills (a few MiB, so a lost page is likely to be touched).
pub const TICKER_BYTES: usize = 4 << 20;
/// Words rewritten per tick.
const MUTATIONS_PER_TICK: u64 = 4096;

/// The workloads' deterministic mixer (also what `ctick-big`'s table holds: word i =
/// splitmix64(i ^ 0x5eed)).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The initial contents.
pub fn fill(words: &mut [u64]) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = splitmix64(i as u64);
    }
}

/// The mutation done for tick `n` (n >= 1).
pub fn mutate(words: &mut [u64], n: u64) {
    let len = words.len() as u64;
    if len == 0 {
        return;
    }
    for j in 0..MUTATIONS_PER_TICK {
        let r = splitmix64(n.wrapping_mul(0x1_0000_0001).wrapping_add(j));
        let idx = (r % len) as usize;
        words[idx] = words[idx].rotate_left(7) ^ r ^ n;
    }
}

/// Order-sensitive checksum of the whole buffer.
pub fn checksum(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &w in words {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
    h
}

/// What the ticker's `grow=` option writes in word `i` (0: first, 1: last) of the page at
/// `page` in epoch `epoch` (a new epoch after every discard).
pub fn grow_word(page: u64, i: u64, epoch: u64) -> u64 {
    splitmix64(page ^ (i << 1) ^ (epoch << 48)) | 1
}
