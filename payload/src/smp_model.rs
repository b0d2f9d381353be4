//! The smp-ticker's deterministic workload, shared with the host checker. Every vCPU `v`
//! owns a region of `REGION_WORDS` words, filled from its number, and takes steps: step `s`
//! rewrites `MUTATIONS_PER_STEP` words of its region, then, under the shared lock, adds one
//! to the shared counter, adds `contribution(v, s)` to the shared sum and records `s` as its
//! step count. Lines (one CONSOLE_WRITE each):
//! - `VTICK <v> <s> <checksum>`: vCPU `v` after step `s` (every `STEPS_PER_TICK` steps),
//!   the checksum of its region: the checker recomputes it from `(v, s)` alone.
//! - `SMP <n> counter=<c> sum=<x> steps=<s0>,<s1>,...`: vCPU 0 at tick `n`, read under the
//!   lock: `c` must be the sum of the steps and `x` the sum of every contribution so far (a
//!   lost or torn update under a broken lock shows here).

/// Words in each vCPU's region (1 MiB).
pub const REGION_WORDS: usize = 1 << 17;
/// Words rewritten per step.
const MUTATIONS_PER_STEP: u64 = 256;
/// Steps between two VTICK lines of a vCPU.
pub const STEPS_PER_TICK: u64 = 64;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// vCPU `v`'s region before its first step.
pub fn fill(v: u64, words: &mut [u64]) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = splitmix64((v << 40) ^ i as u64);
    }
}

/// vCPU `v`'s step `s` (s >= 1) on its region.
pub fn step(v: u64, s: u64, words: &mut [u64]) {
    let len = words.len() as u64;
    for j in 0..MUTATIONS_PER_STEP {
        let r = splitmix64((v << 48) ^ s.wrapping_mul(0x1_0000_0001).wrapping_add(j));
        let idx = (r % len) as usize;
        words[idx] = words[idx].rotate_left(9) ^ r ^ s;
    }
}

/// What vCPU `v`'s step `s` adds to the shared sum.
pub fn contribution(v: u64, s: u64) -> u64 {
    splitmix64((v << 56) ^ s) | 1
}

/// Order-sensitive checksum of a region.
pub fn checksum(words: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &w in words {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5);
    }
    h
}

/// The data the vCPUs share, under one lock.
#[derive(Debug, Clone, Copy)]
pub struct Shared {
    pub counter: u64,
    pub sum: u64,
    pub steps: [u64; crate::abi::MAX_VCPUS as usize],
}

impl Shared {
    pub const fn new() -> Shared {
        Shared { counter: 0, sum: 0, steps: [0; crate::abi::MAX_VCPUS as usize] }
    }

    /// vCPU `v` finished step `s`.
    pub fn record(&mut self, v: u64, s: u64) {
        self.counter += 1;
        self.sum = self.sum.wrapping_add(contribution(v, s));
        self.steps[v as usize] = s;
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

/// The shared sum after vCPU v took steps[v] steps, for every v.
pub fn expected_sum(steps: &[u64]) -> u64 {
    let mut sum = 0u64;
    for (v, &n) in steps.iter().enumerate() {
        for s in 1..=n {
            sum = sum.wrapping_add(contribution(v as u64, s));
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    #[test]
    fn the_shared_record_matches_the_model_in_any_interleaving() {
        let mut a = Shared::new();
        let mut b = Shared::new();
        // vCPU 0 steps 1..3, vCPU 2 steps 1..2, in two different orders.
        for (v, s) in [(0, 1), (2, 1), (0, 2), (2, 2), (0, 3)] {
            a.record(v, s);
        }
        for (v, s) in [(2, 1), (2, 2), (0, 1), (0, 2), (0, 3)] {
            b.record(v, s);
        }
        assert_eq!((a.counter, a.sum), (b.counter, b.sum));
        assert_eq!(a.sum, expected_sum(&[3, 0, 2]));
        assert_eq!(a.counter, 5);
        // A lost update shows.
        let mut c = Shared::new();
        for (v, s) in [(0, 1), (2, 1), (0, 2), (0, 3)] {
            c.record(v, s);
        }
        c.steps[2] = 2;
        assert_ne!(c.sum, expected_sum(&c.steps[..3]));
        let mut r0 = vec![0u64; 4096];
        let mut r1 = vec![0u64; 4096];
        fill(0, &mut r0);
        fill(1, &mut r1);
        assert_ne!(checksum(&r0), checksum(&r1), "regions differ per vCPU");
        step(0, 1, &mut r0);
        assert_ne!(checksum(&r0), { let mut t = vec![0u64; 4096]; fill(0, &mut t); checksum(&t) });
        std::println!("checked: the same record in two interleavings, a lost update caught, per-vCPU regions");
    }
}
