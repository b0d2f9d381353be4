//! Xen time: system time from vcpu_time_info (pvclock maths in the library), wall clock from
//! shared_info.
use super::shared_info::{vcpu_time, wallclock_fields};
use crate::hw::cpu;
use core::sync::atomic::{fence, Ordering};
use xshim_shim::xen::pvclock::{self, TimeSnapshot};

/// Reads of a record Xen keeps rewriting give up after this many inconsistent tries (a frame
/// that is not, or not yet, vcpu_info reads as all-ones: an odd version forever).
const MAX_TRIES: u32 = 10_000;

/// Xen system time in ns (since the host booted: it differs after a migration or restore).
///
/// A consistent copy of the time record first (two reads with the same even version and
/// nothing between them), then the TSC. Reading the TSC between the two reads, as pvclock
/// readers usually do, made the loop spin in the lab: with Xen emulating RDTSC, each read is a
/// VM exit, and the record kept changing across it (a register dump showed 378 tries). A TSC
/// read just after a consistent copy is as good: the copy's extrapolation is valid until Xen
/// corrects it, by far less than the clock's own monotonic guard absorbs.
pub fn xen_system_time() -> u64 {
    for _ in 0..MAX_TRIES {
        let Some(t1) = vcpu_time() else { return 0 };
        fence(Ordering::Acquire);
        let Some(t2) = vcpu_time() else { return 0 };
        if pvclock::consistent(t1.version, t2.version) && t1.tsc_timestamp == t2.tsc_timestamp {
            fence(Ordering::Acquire);
            return pvclock::system_time_ns(&TimeSnapshot::from(&t1), cpu::rdtsc());
        }
    }
    0
}

/// Wall-clock time (seconds, nanoseconds since the Unix epoch).
pub fn wallclock() -> (u64, u32) {
    let mut last = (0, 0);
    for _ in 0..MAX_TRIES {
        let Some((v1, sec, nsec)) = wallclock_fields() else { return (0, 0) };
        fence(Ordering::Acquire);
        let Some((v2, _, _)) = wallclock_fields() else { return (0, 0) };
        last = (sec, nsec);
        if pvclock::consistent(v1, v2) {
            break;
        }
    }
    pvclock::wallclock(last.0, last.1, xen_system_time())
}
