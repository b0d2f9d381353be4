//! The payload's monotonic clock, lock-free so that loggers and handlers can read it
//! anywhere. Natively it is the TSC calibrated against the PIT; under Xen it is Xen system
//! time plus an offset that is re-based on every resume, so it continues from the value it
//! had at suspend (a guest's clock stands still while it is saved) and never goes back.
use crate::hw::{cpu, xen::time as xen_time};
use core::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

const SOURCE_NONE: u8 = 0;
const SOURCE_TSC: u8 = 1;
const SOURCE_XEN: u8 = 2;

static SOURCE: AtomicU8 = AtomicU8::new(SOURCE_NONE);
static TSC_BASE: AtomicU64 = AtomicU64::new(0);
/// ns per TSC tick, 32.32 fixed point.
static TSC_NS_MUL: AtomicU64 = AtomicU64::new(0);
/// monotonic = Xen system time + XEN_OFFSET.
static XEN_OFFSET: AtomicI64 = AtomicI64::new(0);
/// The largest value handed out: the clock never goes back, whatever the source does.
static LAST: AtomicU64 = AtomicU64::new(0);

pub fn use_tsc(tsc_base: u64, tsc_hz: u64) {
    TSC_BASE.store(tsc_base, Ordering::SeqCst);
    TSC_NS_MUL.store(((1_000_000_000u128 << 32) / tsc_hz.max(1) as u128) as u64, Ordering::SeqCst);
    SOURCE.store(SOURCE_TSC, Ordering::SeqCst);
}

/// Starts the clock at 0 from the current Xen system time.
pub fn use_xen() {
    XEN_OFFSET.store(-(xen_time::xen_system_time() as i64), Ordering::SeqCst);
    SOURCE.store(SOURCE_XEN, Ordering::SeqCst);
}

fn raw_now() -> u64 {
    match SOURCE.load(Ordering::Relaxed) {
        SOURCE_TSC => {
            let d = cpu::rdtsc().wrapping_sub(TSC_BASE.load(Ordering::Relaxed));
            ((d as u128 * TSC_NS_MUL.load(Ordering::Relaxed) as u128) >> 32) as u64
        }
        SOURCE_XEN => (xen_time::xen_system_time() as i64).wrapping_add(XEN_OFFSET.load(Ordering::Relaxed)).max(0) as u64,
        _ => 0,
    }
}

/// Nanoseconds since boot; never goes backwards.
pub fn now_ns() -> u64 {
    let now = raw_now();
    let prev = LAST.fetch_max(now, Ordering::SeqCst);
    now.max(prev)
}

/// The Xen system time at which the monotonic clock reads `mono`.
pub fn xen_time_for(mono: u64) -> u64 {
    (mono as i64).wrapping_sub(XEN_OFFSET.load(Ordering::Relaxed)).max(0) as u64
}

/// Resume: Xen system time may have jumped (another host, or a later boot of this one).
/// Continue from the last value handed out.
pub fn rebase_on_xen(monotonic_at_suspend: u64) {
    let sys = xen_time::xen_system_time() as i64;
    XEN_OFFSET.store(monotonic_at_suspend as i64 - sys, Ordering::SeqCst);
}
