//! The grant table (v1) as hardware: entries in the frames Xen placed over the reserved grant
//! pages (`shared_info::pages().grant_frame(i)`), references handed out by the host-tested
//! `GrantRefs`, and more frames mapped when they run out. An entry is written frame and
//! domain first, then its flags, and ended only when Xen says the grantee no longer has the
//! frame mapped (io/grant_table.h's protocol). A new domain starts with an empty table.
use super::hypercall::XenHypercalls;
use super::pv_mm::PvMem;
use super::shared_info;
use core::sync::atomic::{fence, AtomicU16, AtomicU32, Ordering};
use spin::Mutex;
use xshim_shim::layout::{GRANT_FRAMES, PAGE_SIZE};
use xshim_shim::xen::abi::grant_table::{GNTTAB_NR_RESERVED_ENTRIES, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING};
use xshim_shim::xen::grant_refs::{GrantRefs, ENTRIES_PER_FRAME};
use xshim_shim::xen::guest::mfn_of_va;
use xshim_shim::xen::xenbus::DeviceError;
use xshim_shim::xen::{pv, pvh};

/// How frames are named to the grantee and how the table grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// PVH: auto-translated, a frame is its gfn (our identity-mapped address >> 12).
    Gfn,
    /// PV: a frame is its mfn, from the p2m (new after every restore or migration).
    Mfn,
}

struct Table {
    refs: GrantRefs,
    translation: Translation,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// `xshim.grant_reserve=N`: N references held back from the devices (never granted), so that
/// the devices' grants land in the table's later frames: the table grows at boot, and its
/// frames are mapped again in a new domain, where the same N are held back again. For testing
/// the growth on real Xen; 0 (the default) holds none back.
static HELD_BACK: AtomicU32 = AtomicU32::new(0);

pub fn hold_back(n: u32) {
    HELD_BACK.store(n, Ordering::Relaxed);
}

fn take_held_back(t: &mut Table) -> Result<(), DeviceError> {
    for _ in 0..HELD_BACK.load(Ordering::Relaxed) {
        if t.refs.alloc().is_none() {
            grow(t)?;
            t.refs.alloc().ok_or(DeviceError::Resources("grant references".into()))?;
        }
    }
    Ok(())
}

/// At boot, once frame 0 is mapped.
pub fn init(translation: Translation) {
    let mut t = Table { refs: GrantRefs::new(1), translation };
    if let Err(e) = take_held_back(&mut t) {
        log::error!("grant table: holding back {} references failed: {e}", HELD_BACK.load(Ordering::Relaxed));
    }
    *TABLE.lock() = Some(t);
}

/// One line for the log: the frames mapped and the references held back.
pub fn describe() -> alloc::string::String {
    let n = HELD_BACK.load(Ordering::Relaxed);
    let held = if n > 0 { alloc::format!(", {n} references held back (xshim.grant_reserve): the devices' grants start in frame {}", (n + GNTTAB_NR_RESERVED_ENTRIES) / ENTRIES_PER_FRAME) } else { alloc::string::String::new() };
    alloc::format!("grant table: {} frame(s) mapped{held}", frames())
}

/// Frames mapped (mapped again after a suspend).
pub fn frames() -> u32 {
    TABLE.lock().as_ref().map_or(1, |t| t.refs.frames())
}

/// A new domain: its table is empty and every reference is free.
pub fn reset() {
    if let Some(t) = TABLE.lock().as_mut() {
        let n = t.refs.frames();
        t.refs.reset(n);
        if let Err(e) = take_held_back(t) {
            log::error!("grant table: holding back references again failed: {e}");
        }
    }
}

/// The frame number that names the page at `va` to another domain.
fn frame_of(translation: Translation, va: u64) -> Result<u64, DeviceError> {
    match translation {
        Translation::Gfn => Ok(va / PAGE_SIZE),
        Translation::Mfn => mfn_of_va(&PvMem, va).map(|m| m.raw()).map_err(|e| DeviceError::Resources(alloc::format!("a machine frame for {va:#x} ({e})"))),
    }
}

fn entry(gref: u32) -> *mut u8 {
    let (frame, index) = GrantRefs::locate(gref);
    (shared_info::pages().grant_frame(frame) + index as u64 * 8) as *mut u8
}

/// Grants `domid` access to the page at `va` (read-only if `readonly`); the reference.
pub fn grant(domid: u16, va: u64, readonly: bool) -> Result<u32, DeviceError> {
    let mut guard = TABLE.lock();
    let t = guard.as_mut().ok_or(DeviceError::Resources("a grant table (none is mapped)".into()))?;
    let frame = frame_of(t.translation, va)?;
    let frame = u32::try_from(frame).map_err(|_| DeviceError::Resources(alloc::format!("a grant for frame {frame:#x} (above 2^32: needs grant table v2)")))?;
    let gref = match t.refs.alloc() {
        Some(g) => g,
        None => {
            grow(t)?;
            t.refs.alloc().ok_or(DeviceError::Resources("grant references".into()))?
        }
    };
    let e = entry(gref);
    // SAFETY: `e` is entry `gref` of a mapped grant frame (refs only hands out references of
    // mapped frames); grant entries are only accessed through raw pointers. The frame and
    // domain go in before the flags make the entry valid.
    unsafe {
        core::ptr::write_volatile(e.add(2) as *mut u16, domid);
        core::ptr::write_volatile(e.add(4) as *mut u32, frame);
    }
    fence(Ordering::Release);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    // SAFETY: as above; the flags word is 2-byte aligned (entries are 8-byte aligned).
    unsafe { AtomicU16::from_ptr(e as *mut u16) }.store(flags, Ordering::Release);
    Ok(gref)
}

/// Ends a grant: false (the entry kept) while the grantee still has the frame mapped.
pub fn end(gref: u32) -> bool {
    let mut guard = TABLE.lock();
    let Some(t) = guard.as_mut() else { return false };
    if gref >= t.refs.frames() * xshim_shim::xen::grant_refs::ENTRIES_PER_FRAME {
        return false;
    }
    // SAFETY: entry of a mapped frame, as in `grant`.
    let flags = unsafe { AtomicU16::from_ptr(entry(gref) as *mut u16) };
    let mut cur = flags.load(Ordering::Acquire);
    loop {
        if cur & (GTF_READING | GTF_WRITING) != 0 {
            return false;
        }
        // Xen sets READING/WRITING with an atomic update too: only clear what we saw.
        match flags.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    t.refs.release(gref);
    true
}

/// One more frame: Xen grows its table as we ask for the frame.
fn grow(t: &mut Table) -> Result<(), DeviceError> {
    let n = t.refs.frames();
    if n >= GRANT_FRAMES {
        return Err(DeviceError::Resources(alloc::format!("grant references ({} frames in use, the shim maps at most {GRANT_FRAMES})", n)));
    }
    let pages = shared_info::pages();
    let r = match t.translation {
        Translation::Gfn => pvh::map_grant_frames(&mut XenHypercalls, &pages, n, n + 1).map_err(|e| alloc::format!("{e}")),
        Translation::Mfn => pv::map_grant_frames(&mut XenHypercalls, &pages, n + 1).map_err(|e| alloc::format!("{e}")),
    };
    r.map_err(|e| DeviceError::Resources(alloc::format!("grant references (growing the table to {} frames failed: {e})", n + 1)))?;
    t.refs.grow();
    log::debug!("grant table grown to {} frames", n + 1);
    Ok(())
}
