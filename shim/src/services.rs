//! The payload ABI (xshim_payload::abi), served by the shim: the call gate, argument
//! validation (every pointer and length against the payload's memory), and the calls.
use crate::platform::{self, clock, Exit};
use crate::console;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use xshim_payload::abi::{self, call, BootInfo, Error, Features, MemRegion, ShutdownKind, Wake, WallClock};
use xshim_shim::payload_mem::PayloadMemory;

pub struct PayloadInfo {
    pub cmdline: String,
    pub regions: Vec<MemRegion>,
    pub window: MemRegion,
    pub stack: MemRegion,
    pub features: Features,
}

static INFO: spin::Once<PayloadInfo> = spin::Once::new();
static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();
static RESUME_NOTIFY: AtomicBool = AtomicBool::new(false);
static RESUMED: AtomicBool = AtomicBool::new(false);
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Fixes the payload's view of the platform and returns its BootInfo.
pub fn init(info: PayloadInfo) -> &'static BootInfo {
    let features = info.features;
    let stack_size = info.stack.len;
    INFO.call_once(|| info);
    BOOT_INFO.call_once(|| BootInfo {
        magic: abi::BOOT_MAGIC,
        abi_version: abi::ABI_VERSION,
        features: features.bits(),
        call: call_gate as *const () as u64,
        stack_size,
        reserved: 0,
    })
}

pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// The guest woke in a new domain: bump the generation, raise the opt-in notification.
pub fn note_resumed() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    RESUMED.store(true, Ordering::SeqCst);
}

/// The call gate. A thin shell: events off while the shim works for the payload (so an
/// event upcall never finds shim state half-updated), then the safe dispatcher.
extern "sysv64" fn call_gate(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let were_enabled = platform::events_disable();
    let r = dispatch(nr, a0, a1, a2, a3);
    if were_enabled {
        platform::events_enable();
    }
    r
}

fn memory() -> PayloadMemory<'static> {
    let info = INFO.get().expect("services initialised before the payload runs");
    PayloadMemory { window: info.window, stack: info.stack, regions: &info.regions }
}

/// A payload buffer, after validation.
fn payload_bytes(ptr: u64, len: u64) -> Result<&'static [u8], Error> {
    if len > abi::MAX_IO_LEN {
        return Err(Error::BadLength);
    }
    if len == 0 {
        return Ok(&[]);
    }
    if !memory().contains(ptr, len) {
        return Err(Error::BadPointer);
    }
    // SAFETY: [ptr, ptr+len) lies inside memory granted to the payload (checked above),
    // which is identity-mapped RAM; the payload is stopped while the shim runs.
    Ok(unsafe { core::slice::from_raw_parts(ptr as *const u8, len as usize) })
}

fn payload_bytes_mut(ptr: u64, len: u64) -> Result<&'static mut [u8], Error> {
    if len > abi::MAX_IO_LEN {
        return Err(Error::BadLength);
    }
    if len == 0 {
        return Ok(&mut []);
    }
    if !memory().contains(ptr, len) {
        return Err(Error::BadPointer);
    }
    // SAFETY: as payload_bytes; the payload is stopped, so this is the only reference.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr as *mut u8, len as usize) })
}

fn write_struct<T: Copy>(ptr: u64, value: T) -> Result<(), Error> {
    let size = core::mem::size_of::<T>() as u64;
    if !ptr.is_multiple_of(core::mem::align_of::<T>() as u64) || !memory().contains(ptr, size) {
        return Err(Error::BadPointer);
    }
    // SAFETY: checked to be aligned and inside payload memory.
    unsafe { core::ptr::write_volatile(ptr as *mut T, value) };
    Ok(())
}

fn ok(v: Result<u64, Error>) -> i64 {
    match v {
        Ok(n) => n as i64,
        Err(e) => e as i64,
    }
}

fn dispatch(nr: u64, a0: u64, a1: u64, _a2: u64, _a3: u64) -> i64 {
    let info = INFO.get().expect("services initialised");
    match nr {
        call::CONSOLE_WRITE => ok(payload_bytes(a0, a1).map(|b| {
            console::payload_write(b);
            b.len() as u64
        })),
        call::CONSOLE_READ => ok(payload_bytes_mut(a0, a1).map(|b| console::read(b) as u64)),
        call::MONOTONIC_NS => clock::now_ns() as i64,
        call::WALLCLOCK => {
            let (sec, nsec) = platform::wallclock();
            ok(write_struct(a0, WallClock { sec, nsec, reserved: 0 }).map(|_| 0))
        }
        call::WAIT => wait(a0).bits() as i64,
        call::SHUTDOWN => {
            let how = match a0 {
                x if x == ShutdownKind::Poweroff as u64 => Exit::Poweroff(a1.min(255) as u8),
                x if x == ShutdownKind::Reboot as u64 => Exit::Reboot,
                x if x == ShutdownKind::Crash as u64 => {
                    log::error!("payload asked for a crash (code {a1})");
                    Exit::Crash
                }
                _ => return Error::BadArgument as i64,
            };
            platform::exit(how)
        }
        call::CMDLINE => {
            let src = info.cmdline.as_bytes();
            if a1 == 0 {
                return src.len() as i64;
            }
            ok(payload_bytes_mut(a0, a1).map(|dst| {
                let n = dst.len().min(src.len());
                dst[..n].copy_from_slice(&src[..n]);
                src.len() as u64
            }))
        }
        call::MEMMAP => {
            let total = info.regions.len() as u64;
            if a1 == 0 {
                return total as i64;
            }
            let n = a1.min(total);
            let size = core::mem::size_of::<MemRegion>() as u64;
            if !a0.is_multiple_of(8) || !memory().contains(a0, n * size) {
                return Error::BadPointer as i64;
            }
            for (i, r) in info.regions.iter().take(n as usize).enumerate() {
                if let Err(e) = write_struct(a0 + i as u64 * size, *r) {
                    return e as i64;
                }
            }
            total as i64
        }
        call::RESUME_NOTIFY => match a0 {
            0 | 1 => {
                if a0 == 1 {
                    RESUMED.store(false, Ordering::SeqCst);
                }
                RESUME_NOTIFY.swap(a0 == 1, Ordering::SeqCst) as i64
            }
            _ => Error::BadArgument as i64,
        },
        call::GENERATION => generation() as i64,
        call::VERSION => (abi::ABI_VERSION as u64 | (info.features.bits() as u64) << 32) as i64,
        _ => Error::NoSuchCall as i64,
    }
}

/// Sleeps until the deadline or an event, halting the vCPU in between (no busy loop).
fn wait(deadline: u64) -> Wake {
    loop {
        if RESUME_NOTIFY.load(Ordering::SeqCst) && RESUMED.swap(false, Ordering::SeqCst) {
            return Wake::RESUMED;
        }
        if console::input_pending() {
            return Wake::CONSOLE_INPUT;
        }
        if clock::now_ns() >= deadline {
            return Wake::DEADLINE;
        }
        platform::arm_timer(deadline);
        platform::idle();
    }
}
