//! More than one vCPU, the mechanism: the shim lock, the stop for a suspend, and each
//! vCPU's flags (online, started with what, woken). What a secondary does with them is the
//! kernel's (`kernel::secondary_loop`).
//!
//! The shim stays single-threaded: every way into it — a payload call, a page fault on
//! payload memory, vCPU 0's event upcall — takes one lock, which a vCPU gives up only while
//! it sleeps (WAIT, a disk call waiting for its backend, a secondary waiting to be started).
//! Secondaries' own upcalls (their timer, their IPI) touch nothing but their own flags and
//! take no lock.
//!
//! A suspend stops the others first, as Linux's stop_machine does for the seed's step 3:
//! vCPU 0, holding the lock in its upcall, asks every other vCPU to park and sends each its
//! IPI; a vCPU parks wherever it is outside the shim — in the payload (the IPI interrupts it),
//! asleep (the IPI wakes it), or waiting for the lock — with events off, spinning on a flag
//! in its own stack frame, and Xen saves it there. vCPU 0 runs the sequence, rebinds every
//! vCPU's timer and IPI in a new domain, and lets them go.
use crate::hw::smp::{self, MAX_VCPUS};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// vCPUs the payload may use (1 until the secondaries are up).
static COUNT: AtomicUsize = AtomicUsize::new(1);
/// A secondary reached its loop and can take VCPU_START.
static ONLINE: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];

pub fn count() -> usize {
    COUNT.load(Ordering::Acquire)
}

pub fn current() -> usize {
    smp::current()
}

// ---- the shim lock ----

const NOBODY: usize = usize::MAX;
static OWNER: AtomicUsize = AtomicUsize::new(NOBODY);

/// The shim lock, held (or already held by this vCPU further up its stack: then dropping
/// this does nothing).
pub struct ShimLock {
    taken: bool,
}

impl Drop for ShimLock {
    fn drop(&mut self) {
        if self.taken {
            OWNER.store(NOBODY, Ordering::Release);
        }
    }
}

/// Takes the shim lock, with events off on this vCPU. While it waits it parks if a suspend
/// asks it to (the holder may be vCPU 0 waiting for exactly that).
pub fn lock() -> ShimLock {
    let me = current();
    if OWNER.load(Ordering::Relaxed) == me {
        return ShimLock { taken: false };
    }
    loop {
        if OWNER.compare_exchange_weak(NOBODY, me, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return ShimLock { taken: true };
        }
        park_if_asked(me);
        core::hint::spin_loop();
    }
}

/// Runs `f` (a sleep) without the shim lock if this vCPU holds it, and takes it again.
pub fn unlocked<R>(f: impl FnOnce() -> R) -> R {
    let me = current();
    let held = OWNER.load(Ordering::Relaxed) == me;
    if held {
        OWNER.store(NOBODY, Ordering::Release);
    }
    let r = f();
    if held {
        core::mem::forget(lock());
    }
    r
}

// ---- the stop for a suspend ----

static PARK_ASKED: AtomicBool = AtomicBool::new(false);
static PARKED: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];

/// Parks this vCPU (not vCPU 0) while a suspend asks it to. Events are off (every caller
/// runs with them off: the lock's wait, the upcall).
pub fn park_if_asked(me: usize) {
    if me == 0 || !PARK_ASKED.load(Ordering::Acquire) {
        return;
    }
    PARKED[me].store(true, Ordering::Release);
    while PARK_ASKED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    PARKED[me].store(false, Ordering::Release);
}

/// How long vCPU 0 waits for the others to park (they park within an IPI's delivery).
const PARK_TIMEOUT_NS: u64 = 2_000_000_000;

/// vCPU 0, holding the lock: stops every other online vCPU (`kick` sends one its IPI).
/// Returns how many stopped, or the first that did not within the time limit.
pub fn stop_others(mut kick: impl FnMut(usize)) -> Result<usize, usize> {
    PARK_ASKED.store(true, Ordering::SeqCst);
    let online = || (1..count()).filter(|&v| ONLINE[v].load(Ordering::Acquire));
    online().for_each(&mut kick);
    let t0 = crate::clock::now_ns();
    for v in online() {
        while !PARKED[v].load(Ordering::Acquire) {
            if crate::clock::now_ns().saturating_sub(t0) > PARK_TIMEOUT_NS {
                return Err(v);
            }
            core::hint::spin_loop();
        }
    }
    Ok(online().count())
}

/// Lets the parked vCPUs go on.
pub fn release_others() {
    PARK_ASKED.store(false, Ordering::SeqCst);
}

// ---- starting and waking ----

/// What VCPU_START asked a secondary to run: (entry, stack top, argument); entry 0: nothing
/// yet (a payload's entry is never 0: it lies in its window).
static START: [[AtomicU64; 3]; MAX_VCPUS] = [const { [const { AtomicU64::new(0) }; 3] }; MAX_VCPUS];
/// WAKE was called for the vCPU since its last WAIT returned.
static WOKEN: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];

/// This secondary reached its loop: VCPU_START may name it from now on.
pub fn mark_online(me: usize) {
    ONLINE[me].store(true, Ordering::Release);
}

/// What VCPU_START gave this secondary to run, once it did: (entry, stack top, argument).
pub fn start_request(me: usize) -> Option<(u64, u64, u64)> {
    let entry = START[me][0].load(Ordering::Acquire);
    (entry != 0).then(|| (entry, START[me][1].load(Ordering::Relaxed), START[me][2].load(Ordering::Relaxed)))
}

/// Takes this vCPU's WAKE, if one came.
pub fn take_woken(me: usize) -> bool {
    WOKEN[me].swap(false, Ordering::SeqCst)
}

/// WAKE(v): its next WAIT (or the one it is in) returns WOKEN; `kick` sends its IPI.
pub fn wake(v: usize, kick: impl FnOnce(usize)) {
    WOKEN[v].store(true, Ordering::SeqCst);
    if v != current() {
        kick(v);
    }
}

/// VCPU_START (the dispatcher checked the addresses; the caller holds the shim lock, so no
/// two starts race): records the function and wakes the vCPU. False if `v` is not a
/// secondary this guest has online, or was started already.
pub fn start(v: usize, entry: u64, stack_top: u64, arg: u64, kick: impl FnOnce(usize)) -> bool {
    if v == 0 || v >= count() || !ONLINE[v].load(Ordering::Acquire) || start_request(v).is_some() {
        return false;
    }
    START[v][1].store(stack_top, Ordering::Relaxed);
    START[v][2].store(arg, Ordering::Relaxed);
    START[v][0].store(entry, Ordering::Release);
    kick(v);
    true
}

/// vCPUs (a bit each) asleep in a disk call: the disk's event arrives on vCPU 0, which
/// passes it on to them (`device_waiters`).
static DEVICE_WAITERS: AtomicU32 = AtomicU32::new(0);

/// Runs `f` (a disk call's sleep) with this vCPU marked as waiting for a device.
pub fn device_wait<R>(f: impl FnOnce() -> R) -> R {
    let bit = 1u32 << current();
    DEVICE_WAITERS.fetch_or(bit, Ordering::SeqCst);
    let r = f();
    DEVICE_WAITERS.fetch_and(!bit, Ordering::SeqCst);
    r
}

/// The secondaries asleep in a disk call.
pub fn device_waiters() -> impl Iterator<Item = usize> {
    let w = DEVICE_WAITERS.load(Ordering::SeqCst);
    (1..MAX_VCPUS).filter(move |v| w & (1 << v) != 0)
}

/// The platform brought up `n` vCPUs in all (this one included).
pub fn set_count(n: usize) {
    COUNT.store(n.clamp(1, MAX_VCPUS), Ordering::Release);
}

/// Waits until every secondary in `1..n` is online, or the deadline; returns how many vCPUs
/// (vCPU 0 included) are online in a row from 0.
pub fn wait_online(n: usize, timeout_ns: u64) -> usize {
    let t0 = crate::clock::now_ns();
    loop {
        let up = (1..n).take_while(|&v| ONLINE[v].load(Ordering::Acquire)).count() + 1;
        if up == n || crate::clock::now_ns().saturating_sub(t0) > timeout_ns {
            return up;
        }
        core::hint::spin_loop();
    }
}
