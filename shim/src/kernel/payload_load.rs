//! Finds the payload (the first boot module, or one embedded by `xshim wrap`), validates it
//! with `xshim_shim::loader`, and copies its segments into the payload window.
use alloc::format;
use alloc::string::String;
use xshim_shim::layout;
use xshim_shim::loader::{self, LoadPlan};
use xshim_shim::start_info::Module;

/// Where the payload ELF came from.
pub enum Source {
    Module(Module),
    Embedded { paddr: u64, size: u64 },
}

fn overlaps(a: u64, a_len: u64, b: u64, b_end: u64) -> bool {
    a < b_end && b < a.saturating_add(a_len)
}

/// The embedded payload header at EMBEDDED_PAYLOAD_BASE, if `xshim wrap` put one there.
fn embedded() -> Option<Source> {
    let base = layout::EMBEDDED_PAYLOAD_BASE;
    // SAFETY: the embedded-payload area is identity-mapped RAM inside the shim's reserved
    // region; reading two words is harmless whatever it holds.
    let (magic, size) = unsafe { (core::ptr::read_volatile(base as *const u64), core::ptr::read_volatile((base + 8) as *const u64)) };
    let max = layout::EMBEDDED_PAYLOAD_LIMIT - base - layout::EMBEDDED_PAYLOAD_HEADER;
    (magic == layout::EMBEDDED_PAYLOAD_MAGIC && size > 0 && size <= max)
        .then_some(Source::Embedded { paddr: base + layout::EMBEDDED_PAYLOAD_HEADER, size })
}

/// Picks the payload: a boot module wins over an embedded one.
/// `shim_end` is where the shim's image and bss end (Xen places modules right after it).
pub fn find(modules: &[Module], shim_end: u64) -> Result<Source, String> {
    if let Some(m) = modules.first() {
        if m.size == 0 {
            return Err(String::from("boot module 0 (the payload) is empty"));
        }
        if m.paddr.checked_add(m.size).is_none_or(|end| end > layout::IDENTITY_MAP_LIMIT) {
            return Err(format!("boot module at {:#x} (+{:#x}) is outside the identity map", m.paddr, m.size));
        }
        if overlaps(m.paddr, m.size, layout::PAYLOAD_WINDOW_BASE, layout::PAYLOAD_WINDOW_LIMIT) || overlaps(m.paddr, m.size, layout::SHIM_BASE, shim_end) {
            return Err(format!("boot module at {:#x} (+{:#x}) overlaps the shim or the payload window", m.paddr, m.size));
        }
        return Ok(Source::Module(*m));
    }
    embedded().ok_or_else(|| String::from("no payload: pass one as the first boot module (QEMU -initrd, xl ramdisk=) or wrap one with `xshim wrap`"))
}

/// Validates and loads; returns the plan (entry, segments).
pub fn load(src: &Source) -> Result<LoadPlan, String> {
    let (paddr, size, what) = match src {
        Source::Module(m) => (m.paddr, m.size, "boot module"),
        Source::Embedded { paddr, size } => (*paddr, *size, "embedded payload"),
    };
    // SAFETY: [paddr, paddr+size) was checked by `find` to be inside the identity map and
    // clear of the shim and the payload window, so it stays valid while we copy out of it.
    let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, size as usize) };
    let plan = loader::plan(bytes).map_err(|e| format!("{what} at {paddr:#x}: {e}"))?;
    for seg in &plan.segments {
        // SAFETY: the loader checked the segment lies inside the payload window, which is
        // identity-mapped RAM that nothing else uses, and that its file bytes are in `bytes`.
        unsafe {
            let dst = core::slice::from_raw_parts_mut(seg.addr as *mut u8, seg.mem_len as usize);
            let file = &bytes[seg.file_offset as usize..(seg.file_offset + seg.file_len) as usize];
            dst[..file.len()].copy_from_slice(file);
            dst[file.len()..].fill(0);
        }
    }
    Ok(plan)
}
