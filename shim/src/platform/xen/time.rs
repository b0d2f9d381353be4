//! Xen time: system time from vcpu_time_info (pvclock), wall clock from shared_info.
use super::events::{shared_info, vcpu_info};
use crate::arch;
use core::sync::atomic::{fence, Ordering};

fn read_volatile<T: Copy>(r: &T) -> T {
    // SAFETY: `r` is a live reference into shared_info; volatile because Xen rewrites it.
    unsafe { core::ptr::read_volatile(r) }
}

/// Xen system time in ns (since the host booted: it differs after a migration or restore).
pub fn xen_system_time() -> u64 {
    let Some(vi) = vcpu_info() else { return 0 };
    let t = &vi.time;
    // Bounded: a frame that is not (yet) shared_info reads as all-ones, an odd version forever.
    for _ in 0..10_000 {
        let v1 = read_volatile(&t.version);
        fence(Ordering::Acquire);
        let tsc_ts = read_volatile(&t.tsc_timestamp);
        let sys = read_volatile(&t.system_time);
        let mul = read_volatile(&t.tsc_to_system_mul);
        let shift = read_volatile(&t.tsc_shift);
        let tsc = arch::rdtsc();
        fence(Ordering::Acquire);
        let v2 = read_volatile(&t.version);
        if v1 & 1 == 0 && v1 == v2 {
            let mut delta = tsc.wrapping_sub(tsc_ts);
            if shift >= 0 {
                delta <<= shift;
            } else {
                delta >>= -shift;
            }
            return sys.wrapping_add(((delta as u128 * mul as u128) >> 32) as u64);
        }
    }
    0
}

/// Wall-clock time (seconds, nanoseconds since the Unix epoch).
pub fn wallclock() -> (u64, u32) {
    let Some(si) = shared_info() else { return (0, 0) };
    let mut tries = 0;
    let (sec, nsec) = loop {
        tries += 1;
        let v1 = read_volatile(&si.wc_version);
        fence(Ordering::Acquire);
        let sec = read_volatile(&si.wc_sec) as u64 | (read_volatile(&si.wc_sec_hi) as u64) << 32;
        let nsec = read_volatile(&si.wc_nsec);
        fence(Ordering::Acquire);
        if (v1 & 1 == 0 && v1 == read_volatile(&si.wc_version)) || tries > 10_000 {
            break (sec, nsec);
        }
    };
    let total = sec as u128 * 1_000_000_000 + nsec as u128 + xen_system_time() as u128;
    ((total / 1_000_000_000) as u64, (total % 1_000_000_000) as u32)
}
