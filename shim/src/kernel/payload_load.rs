//! Finds the payload (the first boot module, or one embedded by `xshim wrap`), validates it
//! with `xshim_shim::loader`, moves its ELF bytes out of the way if they lie where its
//! segments go, and copies the segments into the payload's window.
use alloc::format;
use alloc::string::String;
use xshim_shim::demand::Range;
use xshim_shim::layout;
use xshim_shim::loader::{self, LoadPlan};
use xshim_shim::start_info::Module;

/// Where the payload ELF came from.
pub enum Source {
    Module(Module),
    Embedded { paddr: u64, size: u64 },
}

impl Source {
    fn describe(&self) -> &'static str {
        match self {
            Source::Module(_) => "boot module",
            Source::Embedded { .. } => "embedded payload",
        }
    }

    fn range(&self) -> Range {
        match self {
            Source::Module(m) => Range::new(m.paddr, m.paddr + m.size),
            Source::Embedded { paddr, size } => Range::new(*paddr, paddr + size),
        }
    }
}

fn overlaps(a: u64, a_len: u64, b: u64, b_end: u64) -> bool {
    a < b_end && b < a.saturating_add(a_len)
}

/// The payload `xshim wrap` embedded, if its header is at EMBEDDED_PAYLOAD_BASE.
fn embedded(shim_end: u64) -> Result<Option<Source>, String> {
    let base = layout::EMBEDDED_PAYLOAD_BASE;
    // SAFETY: the header page is identity-mapped RAM just above the shim's reserved region
    // (Xen and QEMU load it as a segment of the image, or it is plain RAM); reading three
    // words is harmless whatever it holds.
    let (magic, size, paddr) = unsafe {
        (core::ptr::read_volatile(base as *const u64), core::ptr::read_volatile((base + 8) as *const u64), core::ptr::read_volatile((base + 16) as *const u64))
    };
    if magic != layout::EMBEDDED_PAYLOAD_MAGIC {
        return Ok(None);
    }
    let end = paddr.checked_add(size).filter(|&e| size > 0 && e <= layout::IDENTITY_MAP_LIMIT);
    if end.is_none() || overlaps(paddr, size, layout::SHIM_BASE, shim_end.max(base + layout::PAGE_SIZE)) {
        return Err(format!("embedded payload header names [{paddr:#x}, +{size:#x}), which is not usable memory (a damaged image?)"));
    }
    Ok(Some(Source::Embedded { paddr, size }))
}

/// Picks the payload: a boot module wins over an embedded one.
/// `shim_end` is where the shim's image and bss end.
pub fn find(modules: &[Module], shim_end: u64) -> Result<Source, String> {
    if let Some(m) = modules.first() {
        if m.size == 0 {
            return Err(String::from("boot module 0 (the payload) is empty"));
        }
        if m.paddr.checked_add(m.size).is_none_or(|end| end > layout::IDENTITY_MAP_LIMIT) {
            return Err(format!("boot module at {:#x} (+{:#x}) is outside the identity map", m.paddr, m.size));
        }
        if overlaps(m.paddr, m.size, layout::SHIM_BASE, shim_end) {
            return Err(format!("boot module at {:#x} (+{:#x}) overlaps the shim", m.paddr, m.size));
        }
        return Ok(Source::Module(*m));
    }
    embedded(shim_end)?.ok_or_else(|| String::from("no payload: pass one as the first boot module (QEMU -initrd, xl ramdisk=) or wrap one with `xshim wrap`"))
}

/// Validates and loads: the plan (entry, segments, window). `ram` is the RAM the shim has
/// mapped 1:1; `busy` what must not be written (the platform's start-of-day pages and page
/// tables, other modules): the payload's window must be clear of it, and so must the place
/// the ELF bytes move to if they lie in the window.
pub fn load(src: &Source, ram: &[Range], busy: &[Range]) -> Result<LoadPlan, String> {
    let what = src.describe();
    let from = src.range();
    let size = from.end - from.start;
    // SAFETY: `find` checked [from.start, from.end) is inside the identity map and clear of
    // the shim; nothing else writes it while we read the headers.
    let bytes = unsafe { core::slice::from_raw_parts(from.start as *const u8, size as usize) };
    let plan = loader::plan(bytes).map_err(|e| format!("{what} at {:#x}: {e}", from.start))?;
    let window = plan.window();
    let at = loader::place_source(from, window, ram, busy).map_err(|e| format!("{what} at {:#x}: {e}", from.start))?;
    if at != from.start {
        log::info!("payload: its {what} ({} KiB at {:#x}) lies in its window {:#x}..{:#x}: moved to {at:#x} first", size >> 10, from.start, window.start, window.end);
        // SAFETY: both ranges are mapped RAM; `place_source` put the destination above the
        // window, in RAM, clear of everything kept; `copy` allows the two to overlap.
        unsafe { core::ptr::copy(from.start as *const u8, at as *mut u8, size as usize) };
    }
    // SAFETY: [at, at + size) holds the ELF bytes now (moved or not), clear of the window.
    let bytes = unsafe { core::slice::from_raw_parts(at as *const u8, size as usize) };
    for seg in &plan.segments {
        // SAFETY: the loader checked the segment lies inside the payload's window, which
        // `place_source` checked is RAM nothing else uses, and that its file bytes are in
        // `bytes`, which lie outside the window.
        unsafe {
            let dst = core::slice::from_raw_parts_mut(seg.addr as *mut u8, seg.mem_len as usize);
            let file = &bytes[seg.file_offset as usize..(seg.file_offset + seg.file_len) as usize];
            dst[..file.len()].copy_from_slice(file);
            dst[file.len()..].fill(0);
        }
    }
    Ok(plan)
}
