//! Payload ELF validation and the load plan. Pure: it reads bytes and returns what to copy
//! where, so the same checks run in the shim (before loading) and in `xshim inspect`.
use alloc::vec::Vec;
use core::fmt;
use goblin::elf::header::{EM_X86_64, ET_EXEC};
use goblin::elf::program_header::{PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use goblin::elf::Elf;

use crate::layout;

/// Why a payload ELF is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    Empty,
    /// Not ELF, or truncated headers (goblin's words).
    Malformed(alloc::string::String),
    NotElf64,
    NotLittleEndian,
    WrongMachine(u16),
    NotExecutable(u16),
    Dynamic,
    NoLoadableSegment,
    /// Segment index, and what is wrong with it.
    SegmentTruncated { index: usize, end: u64, file_len: u64 },
    SegmentFileBiggerThanMemory { index: usize },
    SegmentOutsideWindow { index: usize, start: u64, end: u64 },
    SegmentOverlapsShim { index: usize },
    SegmentsOverlap { first: usize, second: usize },
    NotIdentity { index: usize },
    EntryOutsideSegments(u64),
    EntryNotExecutable(u64),
    TooManySegments(usize),
    /// The payload's `.note.xshim` names an ABI version this shim does not serve.
    AbiVersion(u32),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = (layout::PAYLOAD_WINDOW_BASE, layout::PAYLOAD_WINDOW_LIMIT);
        match self {
            LoadError::Empty => write!(f, "payload is empty"),
            LoadError::Malformed(e) => write!(f, "payload is not a valid ELF file (truncated or corrupt): {e}"),
            LoadError::NotElf64 => write!(f, "payload is not a 64-bit ELF (ELFCLASS64 required)"),
            LoadError::NotLittleEndian => write!(f, "payload is not little-endian"),
            LoadError::WrongMachine(m) => write!(f, "payload is for the wrong machine (e_machine {m}, need x86-64 = 62)"),
            LoadError::NotExecutable(t) => write!(f, "payload is not a static executable (e_type {t}, need ET_EXEC = 2)"),
            LoadError::Dynamic => write!(f, "payload is dynamically linked (PT_INTERP/PT_DYNAMIC); link it statically"),
            LoadError::NoLoadableSegment => write!(f, "payload has no PT_LOAD segment"),
            LoadError::SegmentTruncated { index, end, file_len } => {
                write!(f, "payload segment {index} is truncated: its data ends at byte {end:#x} but the file has {file_len:#x} bytes")
            }
            LoadError::SegmentFileBiggerThanMemory { index } => write!(f, "payload segment {index} has p_filesz > p_memsz"),
            LoadError::SegmentOutsideWindow { index, start, end } => {
                write!(f, "payload segment {index} [{start:#x}, {end:#x}) is outside the payload window [{lo:#x}, {hi:#x})")
            }
            LoadError::SegmentOverlapsShim { index } => write!(f, "payload segment {index} overlaps the shim"),
            LoadError::SegmentsOverlap { first, second } => write!(f, "payload segments {first} and {second} overlap"),
            LoadError::NotIdentity { index } => write!(f, "payload segment {index} has p_vaddr != p_paddr (payloads run identity-mapped)"),
            LoadError::EntryOutsideSegments(e) => write!(f, "payload entry point {e:#x} is outside every loaded segment"),
            LoadError::EntryNotExecutable(e) => write!(f, "payload entry point {e:#x} is in a segment that is not executable"),
            LoadError::TooManySegments(n) => write!(f, "payload has {n} PT_LOAD segments (at most 16)"),
            LoadError::AbiVersion(v) => write!(f, "payload was built for payload ABI v{v}; this shim serves v{}", xshim_payload::abi::ABI_VERSION),
        }
    }
}

/// One segment to load: copy `file_len` bytes from `file_offset`, zero up to `mem_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub file_offset: u64,
    pub file_len: u64,
    pub mem_len: u64,
    pub executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadPlan {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// From the payload's `.note.xshim`, if it has one (C payloads may not).
    pub abi_version: Option<u32>,
}

impl LoadPlan {
    pub fn footprint(&self) -> u64 {
        self.segments.iter().map(|s| s.mem_len).sum()
    }
}

const MAX_SEGMENTS: usize = 16;

/// Validates a payload ELF for the payload window and returns its load plan.
pub fn plan(bytes: &[u8]) -> Result<LoadPlan, LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    // Check class and byte order before goblin: a 32-bit or big-endian file is a clear
    // "wrong kind" rather than a parse error.
    if bytes.len() >= 6 && &bytes[..4] == b"\x7fELF" {
        if bytes[4] != 2 {
            return Err(LoadError::NotElf64);
        }
        if bytes[5] != 1 {
            return Err(LoadError::NotLittleEndian);
        }
    }
    let elf = Elf::parse(bytes).map_err(|e| LoadError::Malformed(alloc::format!("{e}")))?;
    if elf.header.e_machine != EM_X86_64 {
        return Err(LoadError::WrongMachine(elf.header.e_machine));
    }
    if elf.header.e_type != ET_EXEC {
        return Err(LoadError::NotExecutable(elf.header.e_type));
    }
    if elf.program_headers.iter().any(|p| p.p_type == PT_INTERP || p.p_type == PT_DYNAMIC) {
        return Err(LoadError::Dynamic);
    }
    let loads: Vec<_> = elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD && p.p_memsz > 0).collect();
    if loads.is_empty() {
        return Err(LoadError::NoLoadableSegment);
    }
    if loads.len() > MAX_SEGMENTS {
        return Err(LoadError::TooManySegments(loads.len()));
    }
    let file_len = bytes.len() as u64;
    let mut segments = Vec::with_capacity(loads.len());
    for (index, ph) in loads.iter().enumerate() {
        let file_end = ph.p_offset.saturating_add(ph.p_filesz);
        if file_end > file_len {
            return Err(LoadError::SegmentTruncated { index, end: file_end, file_len });
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(LoadError::SegmentFileBiggerThanMemory { index });
        }
        if ph.p_vaddr != ph.p_paddr {
            return Err(LoadError::NotIdentity { index });
        }
        let start = ph.p_vaddr;
        let end = start.saturating_add(ph.p_memsz);
        if start < layout::SHIM_LIMIT && end > layout::SHIM_BASE {
            return Err(LoadError::SegmentOverlapsShim { index });
        }
        if start < layout::PAYLOAD_WINDOW_BASE || end > layout::PAYLOAD_WINDOW_LIMIT {
            return Err(LoadError::SegmentOutsideWindow { index, start, end });
        }
        segments.push(Segment {
            addr: start,
            file_offset: ph.p_offset,
            file_len: ph.p_filesz,
            mem_len: ph.p_memsz,
            executable: ph.p_flags & PF_X != 0,
        });
    }
    for (i, a) in segments.iter().enumerate() {
        for (j, b) in segments.iter().enumerate().skip(i + 1) {
            if a.addr < b.addr + b.mem_len && b.addr < a.addr + a.mem_len {
                return Err(LoadError::SegmentsOverlap { first: i, second: j });
            }
        }
    }
    let entry = elf.header.e_entry;
    let seg = segments
        .iter()
        .find(|s| entry >= s.addr && entry < s.addr + s.mem_len)
        .ok_or(LoadError::EntryOutsideSegments(entry))?;
    if !seg.executable {
        return Err(LoadError::EntryNotExecutable(entry));
    }
    let abi_version = elf.iter_note_headers(bytes).and_then(|notes| {
        notes.flatten().find(|n| n.name.trim_end_matches('\0') == "XSHIM" && n.n_type == 1 && n.desc.len() == 4).map(|n| u32::from_le_bytes([n.desc[0], n.desc[1], n.desc[2], n.desc[3]]))
    });
    if let Some(v) = abi_version {
        if v != xshim_payload::abi::ABI_VERSION {
            return Err(LoadError::AbiVersion(v));
        }
    }
    Ok(LoadPlan { entry, segments, abi_version })
}

/// A minimal ELF64 x86-64 executable with the given PT_LOAD segments (vaddr, filesz,
/// memsz, flags), the segments' data (`hlt` bytes) after the headers. For tests: the unit tests
/// here and the tools' refused-payload fixtures craft their bad ELFs with it.
pub fn craft(entry: u64, segs: &[(u64, u64, u64, u32)]) -> Vec<u8> {
    let phoff = 64u64;
    let data_start = phoff + 56 * segs.len() as u64;
    let mut out = alloc::vec![0u8; data_start as usize];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2; // ELFCLASS64
    out[5] = 1; // little-endian
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    let mut off = data_start;
    for (i, &(vaddr, filesz, memsz, flags)) in segs.iter().enumerate() {
        let ph = (phoff + 56 * i as u64) as usize;
        out[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out[ph + 4..ph + 8].copy_from_slice(&flags.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
        out[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
        out[ph + 24..ph + 32].copy_from_slice(&vaddr.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&4096u64.to_le_bytes());
        off += filesz;
    }
    // A body that halts, so a payload that is wrongly accepted does not run off.
    out.resize(off as usize, 0xf4);
    out
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub use crate::loader::craft;

    const W: u64 = layout::PAYLOAD_WINDOW_BASE;

    #[test]
    fn good_payload_is_planned() {
        let elf = craft(W + 0x10, &[(W, 0x100, 0x100, 5), (W + 0x1000, 0x10, 0x2000, 6)]);
        let plan = plan(&elf).expect("valid");
        assert_eq!(plan.entry, W + 0x10);
        assert_eq!(plan.segments.len(), 2);
        assert_eq!(plan.footprint(), 0x2100);
        println!("checked: 2 segments planned, entry inside the executable one");
    }

    fn refused(bytes: &[u8]) -> LoadError {
        let e = plan(bytes).expect_err("must be refused");
        println!("refused with: {e}");
        e
    }

    #[test]
    fn truncated_is_refused() {
        let elf = craft(W, &[(W, 0x100, 0x100, 5)]);
        for cut in [0usize, 3, 40, 64, 100, elf.len() - 1] {
            let e = refused(&elf[..cut]);
            assert!(matches!(e, LoadError::Empty | LoadError::Malformed(_) | LoadError::SegmentTruncated { .. }), "{cut}: {e:?}");
        }
    }

    #[test]
    fn wrong_machine_class_type_are_refused() {
        let mut elf = craft(W, &[(W, 0x100, 0x100, 5)]);
        elf[18] = 3; // EM_386
        assert_eq!(refused(&elf), LoadError::WrongMachine(3));
        let mut elf = craft(W, &[(W, 0x100, 0x100, 5)]);
        elf[4] = 1;
        assert_eq!(refused(&elf), LoadError::NotElf64);
        let mut elf = craft(W, &[(W, 0x100, 0x100, 5)]);
        elf[16] = 3; // ET_DYN
        assert_eq!(refused(&elf), LoadError::NotExecutable(3));
        assert!(refused(b"MZ not an elf at all, but long enough to parse maybe ................").to_string().contains("not a valid ELF"));
    }

    #[test]
    fn bad_segments_are_refused() {
        let e = refused(&craft(W, &[(W, 0x100, 0x100, 5), (W + 0x80, 0x100, 0x100, 6)]));
        assert_eq!(e, LoadError::SegmentsOverlap { first: 0, second: 1 });
        let e = refused(&craft(layout::SHIM_BASE, &[(layout::SHIM_BASE, 0x100, 0x100, 5)]));
        assert_eq!(e, LoadError::SegmentOverlapsShim { index: 0 });
        let e = refused(&craft(W, &[(W, 0x100, layout::PAYLOAD_WINDOW_LIMIT, 5)]));
        assert!(matches!(e, LoadError::SegmentOutsideWindow { .. }));
        let e = refused(&craft(W, &[(W, 0x200, 0x100, 5)]));
        assert_eq!(e, LoadError::SegmentFileBiggerThanMemory { index: 0 });
        let e = refused(&craft(W, &[(u64::MAX - 0x10, 0x0, 0x100, 5)]));
        assert!(matches!(e, LoadError::SegmentOverlapsShim { .. } | LoadError::SegmentOutsideWindow { .. }));
    }

    #[test]
    fn entry_must_be_in_an_executable_segment() {
        assert_eq!(refused(&craft(W + 0x5000, &[(W, 0x100, 0x100, 5)])), LoadError::EntryOutsideSegments(W + 0x5000));
        assert_eq!(refused(&craft(W, &[(W, 0x100, 0x100, 6)])), LoadError::EntryNotExecutable(W));
    }

    #[test]
    fn garbage_never_panics() {
        let base = craft(W, &[(W, 0x100, 0x100, 5)]);
        let mut x = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut b = base.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % b.len();
                b[i] = (x >> 8) as u8;
            }
            let _ = plan(&b);
        }
        println!("checked: 2000 mutated headers parsed without panic");
    }
}
