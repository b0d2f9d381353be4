//! Xen's time (pvclock) as pure maths: system time from a vcpu_time_info snapshot and a TSC
//! reading, the version rule that makes a snapshot consistent, and wall-clock time from
//! shared_info's wc_* fields plus system time.
use super::abi::xen::VcpuTimeInfo;

pub const NS_PER_SEC: u64 = 1_000_000_000;

/// The fields of vcpu_time_info that the conversion uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSnapshot {
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
}

impl From<&VcpuTimeInfo> for TimeSnapshot {
    fn from(t: &VcpuTimeInfo) -> Self {
        TimeSnapshot { tsc_timestamp: t.tsc_timestamp, system_time: t.system_time, tsc_to_system_mul: t.tsc_to_system_mul, tsc_shift: t.tsc_shift }
    }
}

/// A record read between two reads of its version is consistent if the version was even
/// (Xen was not updating it) and did not change.
pub fn consistent(version_before: u32, version_after: u32) -> bool {
    version_before & 1 == 0 && version_before == version_after
}

/// Xen system time (ns) at TSC value `tsc`: system_time + ((tsc - tsc_timestamp) << shift)
/// * mul / 2^32, with the shift applied before the 32.32 multiply, as Xen's own guests do.
pub fn system_time_ns(s: &TimeSnapshot, tsc: u64) -> u64 {
    let mut delta = tsc.wrapping_sub(s.tsc_timestamp);
    if s.tsc_shift >= 0 {
        delta = delta.checked_shl(s.tsc_shift as u32).unwrap_or(0);
    } else {
        delta = delta.checked_shr(s.tsc_shift.unsigned_abs() as u32).unwrap_or(0);
    }
    s.system_time.wrapping_add(((delta as u128 * s.tsc_to_system_mul as u128) >> 32) as u64)
}

/// Wall-clock time now: the boot time Xen publishes (wc_sec/wc_nsec) plus system time.
pub fn wallclock(wc_sec: u64, wc_nsec: u32, system_time_ns: u64) -> (u64, u32) {
    let total = wc_sec as u128 * NS_PER_SEC as u128 + wc_nsec as u128 + system_time_ns as u128;
    ((total / NS_PER_SEC as u128) as u64, (total % NS_PER_SEC as u128) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_scaling() {
        // A 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
        let s = TimeSnapshot { tsc_timestamp: 1000, system_time: 5_000, tsc_to_system_mul: 1 << 31, tsc_shift: 0 };
        assert_eq!(system_time_ns(&s, 1000), 5_000);
        assert_eq!(system_time_ns(&s, 3000), 6_000);
        // A 500 MHz TSC: 2 ns per tick = (mul 2^31) << shift 2 ... written as shift 2, mul 2^31.
        let s = TimeSnapshot { tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: 1 << 31, tsc_shift: 2 };
        assert_eq!(system_time_ns(&s, 1_000), 2_000);
        // A negative shift halves the delta first.
        let s = TimeSnapshot { tsc_timestamp: 0, system_time: 7, tsc_to_system_mul: 1 << 31, tsc_shift: -1 };
        assert_eq!(system_time_ns(&s, 4_000), 7 + 1_000);
        // No overflow on a huge delta (the multiply is 128-bit).
        let s = TimeSnapshot { tsc_timestamp: 0, system_time: 0, tsc_to_system_mul: u32::MAX, tsc_shift: 0 };
        assert_eq!(system_time_ns(&s, u64::MAX), ((u64::MAX as u128 * u32::MAX as u128) >> 32) as u64);
        // Absurd shifts from a frame that is not (yet) vcpu_info read as all-ones: no panic.
        let s = TimeSnapshot { tsc_timestamp: 0, system_time: 1, tsc_to_system_mul: 1, tsc_shift: -100 };
        assert_eq!(system_time_ns(&s, 1 << 40), 1);
        println!("checked: pvclock scaling with positive, negative and absurd shifts");
    }

    #[test]
    fn versions_and_wallclock() {
        assert!(consistent(4, 4));
        assert!(!consistent(5, 5), "odd: being updated");
        assert!(!consistent(4, 6), "changed while read");
        assert_eq!(wallclock(1_700_000_000, 900_000_000, 2_100_000_000), (1_700_000_003, 0));
        assert_eq!(wallclock(0, 0, 1), (0, 1));
        println!("checked: version rule and wall clock carry");
    }
}
