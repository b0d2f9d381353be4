//! Start-of-day data: parsing and validating PVH's hvm_start_info (from Xen or QEMU), the
//! command line split between shim and payload, and the payload's share of RAM.
use crate::layout;
use crate::xen::abi::start_info::{HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_START_MAGIC_VALUE};
use alloc::string::String;
use alloc::vec::Vec;
use xshim_payload::abi::MemRegion;
use zerocopy::FromBytes;

/// Reads guest-physical memory (the shim: its identity map; tests: a byte vector).
pub trait PhysRead {
    /// Fills `out` from `paddr`; false if the range is not readable.
    fn read(&self, paddr: u64, out: &mut [u8]) -> bool;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartInfoError {
    Unreadable(&'static str, u64),
    BadMagic(u32),
    NoMemoryMap(u32),
    TooManyModules(u32),
    TooManyMemmapEntries(u32),
    CmdlineTooLong,
    CmdlineNotUtf8,
    NoRam,
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartInfoError::Unreadable(what, a) => write!(f, "hvm_start_info: {what} at {a:#x} is outside readable memory"),
            StartInfoError::BadMagic(m) => write!(f, "hvm_start_info: bad magic {m:#x} (expected {XEN_HVM_START_MAGIC_VALUE:#x})"),
            StartInfoError::NoMemoryMap(v) => write!(f, "hvm_start_info version {v} has no memory map (need version >= 1)"),
            StartInfoError::TooManyModules(n) => write!(f, "hvm_start_info lists {n} modules (at most 16)"),
            StartInfoError::TooManyMemmapEntries(n) => write!(f, "hvm_start_info memory map has {n} entries (at most {})", layout::MAX_MEMMAP_ENTRIES),
            StartInfoError::CmdlineTooLong => write!(f, "command line longer than {} bytes", layout::MAX_CMDLINE),
            StartInfoError::CmdlineNotUtf8 => write!(f, "command line is not UTF-8"),
            StartInfoError::NoRam => write!(f, "memory map lists no RAM"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub paddr: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemmapEntry {
    pub addr: u64,
    pub size: u64,
    pub ty: u32,
}

/// Everything the shim keeps from hvm_start_info (copied: the payload may reuse that memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootData {
    pub version: u32,
    pub cmdline: String,
    pub modules: Vec<Module>,
    pub memmap: Vec<MemmapEntry>,
    pub rsdp: u64,
}

const MAX_MODULES: u32 = 16;

fn read_struct<T: FromBytes>(mem: &impl PhysRead, paddr: u64, what: &'static str) -> Result<T, StartInfoError> {
    let mut buf = alloc::vec![0u8; core::mem::size_of::<T>()];
    if !mem.read(paddr, &mut buf) {
        return Err(StartInfoError::Unreadable(what, paddr));
    }
    Ok(T::read_from_bytes(&buf).expect("sized buffer"))
}

/// Reads a NUL-terminated string of at most MAX_CMDLINE bytes.
fn read_cstr(mem: &impl PhysRead, paddr: u64) -> Result<String, StartInfoError> {
    if paddr == 0 {
        return Ok(String::new());
    }
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    for i in 0..=layout::MAX_CMDLINE as u64 {
        if !mem.read(paddr + i, &mut byte) {
            return Err(StartInfoError::Unreadable("command line", paddr));
        }
        if byte[0] == 0 {
            return String::from_utf8(out).map_err(|_| StartInfoError::CmdlineNotUtf8);
        }
        out.push(byte[0]);
    }
    Err(StartInfoError::CmdlineTooLong)
}

pub fn parse_hvm_start_info(mem: &impl PhysRead, paddr: u64) -> Result<BootData, StartInfoError> {
    let si: HvmStartInfo = read_struct(mem, paddr, "hvm_start_info")?;
    if si.magic != XEN_HVM_START_MAGIC_VALUE {
        return Err(StartInfoError::BadMagic(si.magic));
    }
    if si.version < 1 || si.memmap_paddr == 0 {
        return Err(StartInfoError::NoMemoryMap(si.version));
    }
    if si.nr_modules > MAX_MODULES {
        return Err(StartInfoError::TooManyModules(si.nr_modules));
    }
    if si.memmap_entries as usize > layout::MAX_MEMMAP_ENTRIES {
        return Err(StartInfoError::TooManyMemmapEntries(si.memmap_entries));
    }
    let cmdline = read_cstr(mem, si.cmdline_paddr)?;
    let mut modules = Vec::new();
    for i in 0..si.nr_modules as u64 {
        let m: HvmModlistEntry = read_struct(mem, si.modlist_paddr + i * 32, "module list")?;
        modules.push(Module { paddr: m.paddr, size: m.size });
    }
    let mut memmap = Vec::new();
    for i in 0..si.memmap_entries as u64 {
        let e: HvmMemmapTableEntry = read_struct(mem, si.memmap_paddr + i * 24, "memory map")?;
        memmap.push(MemmapEntry { addr: e.addr, size: e.size, ty: e.type_ });
    }
    if !memmap.iter().any(|e| e.ty == XEN_HVM_MEMMAP_TYPE_RAM && e.size > 0) {
        return Err(StartInfoError::NoRam);
    }
    Ok(BootData { version: si.version, cmdline, modules, memmap, rsdp: si.rsdp_paddr })
}

/// Splits the command line: words starting with `xshim.` are the shim's options, the rest
/// (in order) is the payload's command line.
pub fn split_cmdline(cmdline: &str) -> (Vec<&str>, String) {
    let mut shim = Vec::new();
    let mut payload = String::new();
    for w in cmdline.split_ascii_whitespace() {
        if w.starts_with("xshim.") {
            shim.push(w);
        } else {
            if !payload.is_empty() {
                payload.push(' ');
            }
            payload.push_str(w);
        }
    }
    (shim, payload)
}

/// The RAM entries of a memory map, as ranges, clipped to the identity map (the payload's
/// memory must be reachable 1:1).
pub fn ram_ranges(memmap: &[MemmapEntry]) -> Vec<crate::demand::Range> {
    memmap
        .iter()
        .filter(|e| e.ty == XEN_HVM_MEMMAP_TYPE_RAM)
        .map(|e| crate::demand::Range::new(e.addr, e.addr.saturating_add(e.size).min(layout::IDENTITY_MAP_LIMIT)))
        .filter(|r| r.start < r.end)
        .collect()
}

/// The payload's free memory: `ram` at or above `free_base` (the end of the payload's
/// window), minus `reserved` ranges (what the platform keeps, other boot modules),
/// page-aligned; the largest MAX_PAYLOAD_REGIONS pieces, in address order.
pub fn payload_regions(ram: &[crate::demand::Range], free_base: u64, reserved: &[crate::demand::Range]) -> Vec<MemRegion> {
    let page = layout::PAGE_SIZE;
    let mut pieces: Vec<(u64, u64)> = Vec::new();
    for r in ram {
        let start = r.start.max(free_base);
        let end = r.end.min(layout::IDENTITY_MAP_LIMIT);
        if start < end {
            pieces.push((start, end));
        }
    }
    for r in reserved {
        let (rs, re) = (r.start / page * page, r.end.div_ceil(page) * page);
        let mut next = Vec::new();
        for (s, e) in pieces {
            if re <= s || rs >= e {
                next.push((s, e));
                continue;
            }
            if s < rs {
                next.push((s, rs));
            }
            if re < e {
                next.push((re, e));
            }
        }
        pieces = next;
    }
    let mut regions: Vec<MemRegion> = pieces
        .into_iter()
        .map(|(s, e)| (s.div_ceil(page) * page, e / page * page))
        .filter(|(s, e)| e > s)
        .map(|(s, e)| MemRegion { base: s, len: e - s })
        .collect();
    regions.sort_by_key(|r| core::cmp::Reverse(r.len));
    regions.truncate(layout::MAX_PAYLOAD_REGIONS);
    regions.sort_by_key(|r| r.base);
    regions
}

/// `bytes` (page-aligned) for the shim's devices, taken off the top of the highest of the
/// payload's `regions` that holds them and as much again (the payload keeps the larger
/// part of any region it loses memory from), which shrinks; None when none is large enough.
pub fn carve_from_top(regions: &mut [MemRegion], bytes: u64) -> Option<crate::demand::Range> {
    let bytes = bytes.div_ceil(layout::PAGE_SIZE) * layout::PAGE_SIZE;
    let r = regions.iter_mut().filter(|r| bytes > 0 && r.len >= bytes.saturating_mul(2)).max_by_key(|r| r.base)?;
    r.len -= bytes;
    let start = r.base + r.len;
    Some(crate::demand::Range::new(start, start + bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    struct Mem(Vec<u8>);
    impl PhysRead for Mem {
        fn read(&self, paddr: u64, out: &mut [u8]) -> bool {
            let Some(end) = (paddr as usize).checked_add(out.len()) else { return false };
            if end > self.0.len() {
                return false;
            }
            out.copy_from_slice(&self.0[paddr as usize..end]);
            true
        }
    }

    fn image(magic: u32, version: u32, cmdline: &[u8], nr_mod: u32, memmap: &[(u64, u64, u32)]) -> Mem {
        let mut m = vec![0u8; 0x4000];
        let si = HvmStartInfo {
            magic,
            version,
            flags: 0,
            nr_modules: nr_mod,
            modlist_paddr: 0x1000,
            cmdline_paddr: 0x2000,
            rsdp_paddr: 0,
            memmap_paddr: 0x3000,
            memmap_entries: memmap.len() as u32,
            reserved: 0,
        };
        m[0x100..0x100 + 56].copy_from_slice(si.as_bytes());
        for i in 0..nr_mod.min(4) as usize {
            let e = HvmModlistEntry { paddr: 0x200_0000 + i as u64 * 0x1000, size: 0x800, cmdline_paddr: 0, reserved: 0 };
            m[0x1000 + i * 32..0x1000 + i * 32 + 32].copy_from_slice(e.as_bytes());
        }
        m[0x2000..0x2000 + cmdline.len()].copy_from_slice(cmdline);
        for (i, &(addr, size, ty)) in memmap.iter().enumerate() {
            let e = HvmMemmapTableEntry { addr, size, type_: ty, reserved: 0 };
            m[0x3000 + i * 24..0x3000 + i * 24 + 24].copy_from_slice(e.as_bytes());
        }
        Mem(m)
    }

    #[test]
    fn parses_a_good_start_info() {
        let mem = image(XEN_HVM_START_MAGIC_VALUE, 1, b"xshim.log=debug ticks=3\0", 1, &[(0, 0x9fc00, 1), (0x10_0000, 0x7f0_0000, 1), (0xfeff_c000, 0x4000, 2)]);
        let b = parse_hvm_start_info(&mem, 0x100).unwrap();
        assert_eq!(b.cmdline, "xshim.log=debug ticks=3");
        assert_eq!(b.modules, vec![Module { paddr: 0x200_0000, size: 0x800 }]);
        assert_eq!(b.memmap.len(), 3);
        let (shim, payload) = split_cmdline(&b.cmdline);
        assert_eq!(shim, vec!["xshim.log=debug"]);
        assert_eq!(payload, "ticks=3");
        println!("checked: magic, version, cmdline, 1 module, 3 memmap entries, cmdline split");
    }

    #[test]
    fn odd_start_info_is_refused_with_a_reason() {
        let mm = [(0x10_0000, 0x100_0000, 1)];
        let e = |m: Mem| parse_hvm_start_info(&m, 0x100).unwrap_err();
        assert_eq!(e(image(0xdead, 1, b"\0", 0, &mm)), StartInfoError::BadMagic(0xdead));
        assert_eq!(e(image(XEN_HVM_START_MAGIC_VALUE, 0, b"\0", 0, &mm)), StartInfoError::NoMemoryMap(0));
        assert_eq!(e(image(XEN_HVM_START_MAGIC_VALUE, 1, b"\0", 99, &mm)), StartInfoError::TooManyModules(99));
        assert_eq!(e(image(XEN_HVM_START_MAGIC_VALUE, 1, b"\0", 0, &[(0, 0x1000, 2)])), StartInfoError::NoRam);
        assert_eq!(e(image(XEN_HVM_START_MAGIC_VALUE, 1, &[b'a'; 1100], 0, &mm)), StartInfoError::CmdlineTooLong);
        assert_eq!(e(image(XEN_HVM_START_MAGIC_VALUE, 1, b"\xff\xfe\0", 0, &mm)), StartInfoError::CmdlineNotUtf8);
        assert!(matches!(parse_hvm_start_info(&Mem(vec![0; 16]), 0x100), Err(StartInfoError::Unreadable(..))));
        println!("checked: bad magic, version 0, 99 modules, no RAM, long and non-UTF-8 cmdline, unreadable");
    }

    #[test]
    fn payload_regions_skip_low_memory_modules_and_holes() {
        let mm = [
            MemmapEntry { addr: 0, size: 0x9fc00, ty: 1 },
            MemmapEntry { addr: 0x10_0000, size: 0x7f0_0000, ty: 1 },
            MemmapEntry { addr: 0xfeff_c000, size: 0x4000, ty: 2 },
        ];
        let ram = ram_ranges(&mm);
        assert_eq!(ram.len(), 2, "the reserved entry is not RAM");
        let reserved = [crate::demand::Range::new(0x7e0_0123, 0x7e0_1123)];
        let r = payload_regions(&ram, layout::PAYLOAD_WINDOW_MIN_END, &reserved);
        assert_eq!(r, vec![MemRegion { base: 0x100_0000, len: 0x6e0_0000 }, MemRegion { base: 0x7e0_2000, len: 0x1f_e000 }]);
        // A payload whose window ends at 74 MiB: its free memory starts there.
        let r = payload_regions(&ram, 74 << 20, &reserved);
        assert_eq!(r[0].base, 74 << 20);
        println!("checked: regions start at the window's end, skip a reserved range (page-rounded), skip reserved entries");
    }
}

/// What a 64-bit PV guest keeps from its start_info page at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvBoot {
    pub cmdline: String,
    /// The boot module (the payload), by pseudo-physical address.
    pub module: Option<Module>,
    pub nr_pages: u64,
    /// Virtual address of Xen's p2m array (start_info.mfn_list).
    pub p2m_va: u64,
    /// Virtual address of the top-level page table Xen built and pinned.
    pub pt_base: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvStartInfoError {
    BadMagic,
    NoPages,
    NoP2m,
    CmdlineNotUtf8,
    ModuleOutsideRam { start: u64, len: u64 },
}

impl core::fmt::Display for PvStartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PvStartInfoError::BadMagic => write!(f, "start_info: bad magic (not a 64-bit PV start_info)"),
            PvStartInfoError::NoPages => write!(f, "start_info: nr_pages is 0"),
            PvStartInfoError::NoP2m => write!(f, "start_info: no p2m (mfn_list is 0)"),
            PvStartInfoError::CmdlineNotUtf8 => write!(f, "start_info: command line is not UTF-8"),
            PvStartInfoError::ModuleOutsideRam { start, len } => write!(f, "start_info: boot module at {start:#x} (+{len:#x}) lies outside the guest's RAM"),
        }
    }
}

/// The magic every 64-bit PV start_info begins with ("xen-3.0-x86_64").
pub const PV_START_INFO_MAGIC: &[u8] = b"xen-3.0-x86_64";

/// Checks and extracts start_info (xen.h `struct start_info`) for a 64-bit PV boot.
pub fn parse_pv_start_info(si: &crate::xen::abi::xen::StartInfo) -> Result<PvBoot, PvStartInfoError> {
    use crate::xen::abi::xen::SIF_MOD_START_PFN;
    if !si.magic.starts_with(PV_START_INFO_MAGIC) {
        return Err(PvStartInfoError::BadMagic);
    }
    if si.nr_pages == 0 {
        return Err(PvStartInfoError::NoPages);
    }
    if si.mfn_list == 0 {
        return Err(PvStartInfoError::NoP2m);
    }
    let end = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
    let cmdline = core::str::from_utf8(&si.cmd_line[..end]).map_err(|_| PvStartInfoError::CmdlineNotUtf8)?.into();
    let module = if si.mod_len == 0 {
        None
    } else {
        let start = if si.flags & SIF_MOD_START_PFN != 0 { si.mod_start.checked_mul(layout::PAGE_SIZE) } else { Some(si.mod_start) };
        let ram_end = si.nr_pages.saturating_mul(layout::PAGE_SIZE);
        match start {
            Some(s) if s.checked_add(si.mod_len).is_some_and(|e| e <= ram_end) => Some(Module { paddr: s, size: si.mod_len }),
            _ => return Err(PvStartInfoError::ModuleOutsideRam { start: si.mod_start, len: si.mod_len }),
        }
    };
    Ok(PvBoot { cmdline, module, nr_pages: si.nr_pages, p2m_va: si.mfn_list, pt_base: si.pt_base })
}

#[cfg(test)]
mod pv_tests {
    use super::*;
    use crate::xen::abi::xen::{StartInfo, SIF_MOD_START_PFN};
    use zerocopy::FromZeros;

    fn good() -> StartInfo {
        let mut si = StartInfo::new_zeroed();
        si.magic[..PV_START_INFO_MAGIC.len()].copy_from_slice(PV_START_INFO_MAGIC);
        si.nr_pages = 32768;
        si.mfn_list = 0x40_0000;
        si.pt_base = 0x50_0000;
        si.cmd_line[..9].copy_from_slice(b"ticks=3 x");
        si.flags = SIF_MOD_START_PFN;
        si.mod_start = 0x600;
        si.mod_len = 0x1234;
        si
    }

    #[test]
    fn a_good_start_info_is_parsed() {
        let b = parse_pv_start_info(&good()).unwrap();
        assert_eq!(b.cmdline, "ticks=3 x");
        assert_eq!(b.module, Some(Module { paddr: 0x60_0000, size: 0x1234 }), "SIF_MOD_START_PFN: mod_start is a pfn");
        let mut si = good();
        si.flags = 0;
        si.mod_start = 0x60_0000;
        assert_eq!(parse_pv_start_info(&si).unwrap().module, Some(Module { paddr: 0x60_0000, size: 0x1234 }), "without the flag: an address");
        si.mod_len = 0;
        assert_eq!(parse_pv_start_info(&si).unwrap().module, None);
        println!("checked: cmdline, module by pfn and by address, no module");
    }

    #[test]
    fn odd_start_infos_are_refused() {
        let mut si = good();
        si.magic[4] = b'4';
        assert_eq!(parse_pv_start_info(&si), Err(PvStartInfoError::BadMagic));
        let si = StartInfo { nr_pages: 0, ..good() };
        assert_eq!(parse_pv_start_info(&si), Err(PvStartInfoError::NoPages));
        let si = StartInfo { mfn_list: 0, ..good() };
        assert_eq!(parse_pv_start_info(&si), Err(PvStartInfoError::NoP2m));
        let mut si = good();
        si.cmd_line[0] = 0xff;
        assert_eq!(parse_pv_start_info(&si), Err(PvStartInfoError::CmdlineNotUtf8));
        let si = StartInfo { mod_start: u64::MAX / 2, ..good() };
        assert!(matches!(parse_pv_start_info(&si), Err(PvStartInfoError::ModuleOutsideRam { .. })), "overflowing pfn");
        let si = StartInfo { mod_start: 0x7fff, ..good() };
        assert!(matches!(parse_pv_start_info(&si), Err(PvStartInfoError::ModuleOutsideRam { .. })), "past nr_pages");
        let mut si = good();
        si.cmd_line = [b'a'; 1024];
        assert_eq!(parse_pv_start_info(&si).unwrap().cmdline.len(), 1024, "an unterminated command line is taken whole");
        println!("checked: bad magic, no pages, no p2m, bad UTF-8, module outside RAM, unterminated cmdline");
    }
    #[test]
    fn device_memory_comes_from_the_top_of_the_highest_region_that_can_spare_it() {
        let mib = 1u64 << 20;
        let mut regions = [MemRegion { base: 16 * mib, len: 100 * mib }, MemRegion { base: 200 * mib, len: 2 * mib }];
        // The 2 MiB region would lose more than half: the 100 MiB one gives, and shrinks.
        assert_eq!(carve_from_top(&mut regions, 1280 << 10), Some(crate::demand::Range::new(116 * mib - (1280 << 10), 116 * mib)));
        assert_eq!(regions[0].len, 100 * mib - (1280 << 10));
        // Rounded up to pages; small enough for the top region.
        assert_eq!(carve_from_top(&mut regions, 4000), Some(crate::demand::Range::new(202 * mib - 4096, 202 * mib)));
        assert_eq!(regions[1].len, 2 * mib - 4096);
        assert_eq!(carve_from_top(&mut regions, 0), None);
        assert_eq!(carve_from_top(&mut regions, 60 * mib), None);
        assert_eq!(carve_from_top(&mut [], 4096), None);
    }
}
