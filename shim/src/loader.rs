//! Payload ELF validation and the load plan. Pure: it reads bytes and returns what to copy
//! where, so the same checks run in the shim (before loading) and in `xshim inspect`.
use alloc::vec::Vec;
use core::fmt;
use goblin::elf::header::{EM_X86_64, ET_EXEC};
use goblin::elf::program_header::{PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD, PT_NOTE};
use goblin::elf::section_header::{SHT_DYNAMIC, SHT_DYNSYM};
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
    /// More program or section headers than any payload needs (refused before parsing).
    TooManyHeaders { phnum: u64, shnum: u64 },
    /// A PT_NOTE segment that is malformed (offset, size, a note running past its end).
    BadNote { index: usize, why: &'static str },
    /// Xen ELF notes: this is a kernel image (a shim?), not a payload.
    XenNotes,
    /// Dynamic-linking sections (.interp, .dynamic, .dynsym) without PT_INTERP/PT_DYNAMIC.
    DynamicSections,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = (layout::PAYLOAD_WINDOW_BASE, layout::PAYLOAD_SEGMENT_LIMIT);
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
                write!(f, "payload segment {index} [{start:#x}, {end:#x}) is outside the payload's address range [{lo:#x}, {hi:#x}) (link with linker/payload.ld)")
            }
            LoadError::SegmentOverlapsShim { index } => write!(f, "payload segment {index} overlaps the shim"),
            LoadError::SegmentsOverlap { first, second } => write!(f, "payload segments {first} and {second} overlap"),
            LoadError::NotIdentity { index } => write!(f, "payload segment {index} has p_vaddr != p_paddr (payloads run identity-mapped)"),
            LoadError::EntryOutsideSegments(e) => write!(f, "payload entry point {e:#x} is outside every loaded segment"),
            LoadError::EntryNotExecutable(e) => write!(f, "payload entry point {e:#x} is in a segment that is not executable"),
            LoadError::TooManySegments(n) => write!(f, "payload has {n} PT_LOAD segments (at most 16)"),
            LoadError::AbiVersion(v) => write!(f, "payload was built for payload ABI v{v}; this shim serves v{}", xshim_payload::abi::ABI_VERSION),
            LoadError::TooManyHeaders { phnum, shnum } => write!(f, "payload has {phnum} program headers and {shnum} section headers (at most {MAX_PHDRS} and {MAX_SHDRS})"),
            LoadError::BadNote { index, why } => write!(f, "payload's PT_NOTE (program header {index}) is malformed: {why}"),
            LoadError::XenNotes => write!(f, "payload carries Xen ELF notes: it is a kernel image (the shim itself, or a wrapped image?), not a payload"),
            LoadError::DynamicSections => write!(f, "payload is dynamically linked (it has .interp/.dynamic/.dynsym sections): dynamic payloads are not supported; link with -static"),
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

    /// Where the last segment ends.
    pub fn segments_end(&self) -> u64 {
        self.segments.iter().map(|s| s.addr + s.mem_len).max().unwrap_or(layout::PAYLOAD_WINDOW_BASE)
    }

    /// The payload's window: its segments and the rest of the 2 MiB-rounded range after them
    /// (at least 8..16 MiB).
    pub fn window(&self) -> crate::demand::Range {
        crate::demand::Range::new(layout::PAYLOAD_WINDOW_BASE, layout::payload_window_end(self.segments_end()))
    }
}

/// Why the payload's ELF bytes cannot be placed where its segments can be copied from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// The window overlaps memory the platform keeps (Xen's start-of-day pages, page
    /// tables) or runs past the guest's RAM.
    WindowBlocked { window: crate::demand::Range, by: crate::demand::Range },
    /// The window runs past the guest's RAM (or into a hole in it).
    WindowNotRam { window: crate::demand::Range },
    /// No free RAM above the window holds the ELF bytes while they are copied from.
    NoRoomForSource { bytes: u64 },
    /// The ELF bytes themselves are not (all) in the guest's RAM: the image or module was
    /// loaded past its end.
    SourceNotRam { source: crate::demand::Range },
}

impl fmt::Display for PlacementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlacementError::WindowBlocked { window, by } => write!(
                f,
                "the payload's window [{:#x}, {:#x}) is not free RAM in this guest: [{:#x}, {:#x}) is in the way (more memory, or a smaller payload)",
                window.start, window.end, by.start, by.end
            ),
            PlacementError::WindowNotRam { window } => {
                write!(f, "the payload's window [{:#x}, {:#x}) is not all RAM in this guest (give the guest more memory)", window.start, window.end)
            }
            PlacementError::SourceNotRam { source } => write!(
                f,
                "its bytes [{:#x}, {:#x}) are not all in the guest's RAM: the image does not fit (give the guest more memory)",
                source.start, source.end
            ),
            PlacementError::NoRoomForSource { bytes } => {
                write!(f, "no free RAM above the payload's window to hold its {} KiB ELF while it is loaded (give the guest more memory)", bytes.div_ceil(1024))
            }
        }
    }
}

/// Decides where the payload's ELF bytes (`source`, page-aligned outward) must be while its
/// segments are copied out of them: where they are if that is clear of the window, else the
/// lowest page in `ram` at or above the window's end where they fit clear of `busy` (the
/// caller moves them there first; the move may overlap the old place). Also checks that the
/// window itself is RAM and clear of `busy`.
pub fn place_source(source: crate::demand::Range, window: crate::demand::Range, ram: &[crate::demand::Range], busy: &[crate::demand::Range]) -> Result<u64, PlacementError> {
    use crate::demand::Range;
    let in_ram = |r: Range| ram.iter().any(|m| m.start <= r.start && r.end <= m.end);
    if !in_ram(source) {
        return Err(PlacementError::SourceNotRam { source });
    }
    if let Some(b) = busy.iter().find(|b| b.start < window.end && window.start < b.end) {
        return Err(PlacementError::WindowBlocked { window, by: *b });
    }
    if !in_ram(window) {
        return Err(PlacementError::WindowNotRam { window });
    }
    if source.end <= window.start || source.start >= window.end {
        return Ok(source.start);
    }
    let page = layout::PAGE_SIZE;
    let offset = source.start % page;
    let bytes = source.end - source.start;
    let span = (offset + bytes).div_ceil(page) * page;
    // Candidates: the window's end, and the end of every busy range above it.
    let mut starts: Vec<u64> = core::iter::once(window.end).chain(busy.iter().map(|b| b.end.div_ceil(page) * page)).filter(|&a| a >= window.end).collect();
    starts.extend(ram.iter().map(|m| m.start.div_ceil(page) * page).filter(|&a| a >= window.end));
    starts.sort_unstable();
    for a in starts {
        let r = Range::new(a, a + span);
        if in_ram(r) && !busy.iter().any(|b| b.start < r.end && r.start < b.end) {
            return Ok(a + offset);
        }
    }
    Err(PlacementError::NoRoomForSource { bytes })
}

const MAX_SEGMENTS: usize = 16;
/// Limits checked on the raw header before goblin parses (and allocates for) the tables:
/// payloads have a handful of program headers and a few dozen sections.
pub const MAX_PHDRS: u64 = 64;
pub const MAX_SHDRS: u64 = 1024;
/// The largest PT_NOTE segment accepted (xshim's note is 24 bytes; a build-id adds 36).
pub const MAX_NOTE_SEGMENT: u64 = 64 * 1024;
/// Notes are 4-byte aligned whatever p_align says (linux-loader #71).
const NOTE_ALIGN: u64 = 4;
const NOTE_HEADER: u64 = 12;

/// One ELF note: owner (without its NUL), type, descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note<'a> {
    pub owner: &'a [u8],
    pub note_type: u32,
    pub desc: &'a [u8],
}

fn le32(b: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// Parses the notes of one note area (a PT_NOTE segment's bytes), with checked arithmetic and
/// bounded work: every note advances by at least 12 bytes, and any note that does not fit is
/// an error (goblin 0.9's iterator returned the same error forever on such input).
pub fn parse_notes(area: &[u8]) -> Result<alloc::vec::Vec<Note<'_>>, &'static str> {
    let mut out = alloc::vec::Vec::new();
    let mut at = 0u64;
    let len = area.len() as u64;
    while at < len {
        if len - at < NOTE_HEADER {
            return Err("a note header runs past the end of the segment");
        }
        let (namesz, descsz, note_type) = (le32(area, at).ok_or("short")? as u64, le32(area, at + 4).ok_or("short")? as u64, le32(area, at + 8).ok_or("short")?);
        let name_at = at + NOTE_HEADER;
        let desc_at = name_at.checked_add(namesz.next_multiple_of(NOTE_ALIGN)).ok_or("note name size overflows")?;
        let end = desc_at.checked_add(descsz.next_multiple_of(NOTE_ALIGN)).ok_or("note descriptor size overflows")?;
        if name_at + namesz > len || desc_at.saturating_add(descsz) > len || end > len.next_multiple_of(NOTE_ALIGN) {
            return Err("a note's name or descriptor runs past the end of the segment");
        }
        let owner = &area[name_at as usize..(name_at + namesz) as usize];
        let owner = owner.strip_suffix(b"\0").unwrap_or(owner);
        out.push(Note { owner, note_type, desc: &area[desc_at as usize..(desc_at + descsz) as usize] });
        at = end;
    }
    Ok(out)
}

/// Every note of every PT_NOTE segment, checked: `Ok` only if all of them parse. Shared by
/// the shim, `xshim inspect` and `xshim wrap`, so they cannot disagree.
pub fn segment_notes<'a>(elf: &Elf, bytes: &'a [u8]) -> Result<alloc::vec::Vec<Note<'a>>, LoadError> {
    let mut out = alloc::vec::Vec::new();
    for (index, ph) in elf.program_headers.iter().enumerate().filter(|(_, p)| p.p_type == PT_NOTE) {
        if ph.p_filesz > MAX_NOTE_SEGMENT {
            return Err(LoadError::BadNote { index, why: "larger than 64 KiB" });
        }
        let end = ph.p_offset.checked_add(ph.p_filesz).filter(|&e| e <= bytes.len() as u64).ok_or(LoadError::BadNote { index, why: "it lies outside the file" })?;
        let area = &bytes[ph.p_offset as usize..end as usize];
        out.extend(parse_notes(area).map_err(|why| LoadError::BadNote { index, why })?);
    }
    Ok(out)
}

/// e_phnum and e_shnum from the raw header (bytes 56 and 60 of an ELF64 header).
fn header_counts(bytes: &[u8]) -> (u64, u64) {
    let half = |at: usize| bytes.get(at..at + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as u64);
    (half(56), half(60))
}

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
    let (phnum, shnum) = header_counts(bytes);
    if bytes.starts_with(b"\x7fELF") && (phnum > MAX_PHDRS || shnum > MAX_SHDRS) {
        return Err(LoadError::TooManyHeaders { phnum, shnum });
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
    let dynamic_section = |ty: u32, name: &str| ty == SHT_DYNAMIC || ty == SHT_DYNSYM || name == ".interp";
    if elf.section_headers.iter().any(|sh| dynamic_section(sh.sh_type, elf.shdr_strtab.get_at(sh.sh_name).unwrap_or(""))) {
        return Err(LoadError::DynamicSections);
    }
    let notes = segment_notes(&elf, bytes)?;
    if notes.iter().any(|n| n.owner == b"Xen") {
        return Err(LoadError::XenNotes);
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
        if start < layout::PAYLOAD_WINDOW_BASE || end > layout::PAYLOAD_SEGMENT_LIMIT {
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
    let abi_version = notes.iter().find(|n| n.owner == b"XSHIM" && n.note_type == 1 && n.desc.len() == 4).map(|n| u32::from_le_bytes([n.desc[0], n.desc[1], n.desc[2], n.desc[3]]));
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
    craft_with_note(entry, segs, None)
}

/// `craft` plus a PT_NOTE program header over `note` (appended to the file).
pub fn craft_with_note(entry: u64, segs: &[(u64, u64, u64, u32)], note: Option<&[u8]>) -> Vec<u8> {
    let mut out = craft_loads(entry, segs, note.is_some() as usize);
    if let Some(note) = note {
        let off = out.len() as u64;
        out.extend_from_slice(note);
        let ph = 64 + 56 * segs.len();
        out[ph..ph + 4].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
        out[ph + 4..ph + 8].copy_from_slice(&4u32.to_le_bytes());
        out[ph + 8..ph + 16].copy_from_slice(&off.to_le_bytes());
        out[ph + 32..ph + 40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        out[ph + 40..ph + 48].copy_from_slice(&(note.len() as u64).to_le_bytes());
        out[ph + 48..ph + 56].copy_from_slice(&4u64.to_le_bytes());
    }
    out
}

/// An ELF note: owner, type, descriptor, each padded to 4 bytes.
pub fn note_bytes(owner: &[u8], note_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(owner.len() as u32 + 1).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&note_type.to_le_bytes());
    n.extend_from_slice(owner);
    n.push(0);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

fn craft_loads(entry: u64, segs: &[(u64, u64, u64, u32)], extra_phdrs: usize) -> Vec<u8> {
    let phoff = 64u64;
    let data_start = phoff + 56 * (segs.len() + extra_phdrs) as u64;
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
    out[56..58].copy_from_slice(&((segs.len() + extra_phdrs) as u16).to_le_bytes());
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
    use crate::demand::Range;

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
        let e = refused(&craft(W, &[(W, 0x100, layout::PAYLOAD_SEGMENT_LIMIT, 5)]));
        assert!(matches!(e, LoadError::SegmentOutsideWindow { .. }));
        let e = refused(&craft(W, &[(W, 0x200, 0x100, 5)]));
        assert_eq!(e, LoadError::SegmentFileBiggerThanMemory { index: 0 });
        let e = refused(&craft(W, &[(u64::MAX - 0x10, 0x0, 0x100, 5)]));
        assert!(matches!(e, LoadError::SegmentOverlapsShim { .. } | LoadError::SegmentOutsideWindow { .. }));
    }

    #[test]
    fn windows_grow_with_the_payload() {
        let small = plan(&craft(W, &[(W, 0x100, 0x100, 5)])).unwrap();
        assert_eq!(small.window(), Range::new(W, layout::PAYLOAD_WINDOW_MIN_END));
        // A 64 MiB table after the code: the window ends at the next 2 MiB past it.
        let big = plan(&craft(W, &[(W, 0x100, 0x100, 5), (W + 0x1000, 0x10, 64 << 20, 6)])).unwrap();
        assert_eq!(big.window(), Range::new(W, (74 << 20) + 0x0));
        let e = refused(&craft(W, &[(W, 0x100, 0x100, 5), (layout::PAYLOAD_SEGMENT_LIMIT - 0x1000, 0x10, 0x2000, 6)]));
        assert!(matches!(e, LoadError::SegmentOutsideWindow { index: 1, .. }), "{e:?}");
        println!("checked: 8..16 MiB for a small payload, 8..74 MiB for a 64 MiB table, nothing past 1 GiB");
    }

    #[test]
    fn the_source_moves_out_of_the_window_only_when_it_must() {
        const MIB: u64 = 1 << 20;
        let ram = [Range::new(0, 256 * MIB)];
        let window = Range::new(W, 80 * MIB);
        // Clear of the window (QEMU puts its initrd at the top of RAM): stays.
        assert_eq!(place_source(Range::new(180 * MIB, 250 * MIB), window, &ram, &[]), Ok(180 * MIB));
        // Right after the shim, overlapping the window (Xen PVH's module, a PV module given by
        // pfn): moves to the window's end, keeping its offset in the page.
        assert_eq!(place_source(Range::new(0x3b_0010, 0x3b_0010 + 70 * MIB), window, &ram, &[]), Ok(80 * MIB + 0x10));
        // Something kept just above the window: the source goes past it.
        let busy = [Range::new(80 * MIB, 80 * MIB + 0x5000)];
        assert_eq!(place_source(Range::new(W, W + MIB), window, &ram, &busy), Ok(80 * MIB + 0x5000));
        // No room above: a clear error, nothing moved.
        let e = place_source(Range::new(W, W + 200 * MIB), window, &ram, &[]).unwrap_err();
        assert_eq!(e, PlacementError::NoRoomForSource { bytes: 200 * MIB });
        // The window itself blocked by kept pages, or past RAM's end.
        let e = place_source(Range::new(200 * MIB, 201 * MIB), window, &ram, &[Range::new(10 * MIB, 11 * MIB)]).unwrap_err();
        assert!(matches!(e, PlacementError::WindowBlocked { .. }), "{e}");
        let e = place_source(Range::new(200 * MIB, 201 * MIB), Range::new(W, 300 * MIB), &ram, &[]).unwrap_err();
        assert!(matches!(e, PlacementError::WindowNotRam { .. }), "{e}");
        // A wrapped image bigger than the guest: its bytes were loaded past RAM's end.
        let e = place_source(Range::new(74 * MIB, 300 * MIB), window, &ram, &[]).unwrap_err();
        assert!(matches!(e, PlacementError::SourceNotRam { .. }), "{e}");
        println!("checked: stays, moves above the window, skips kept pages, refuses without room: {e}");
    }

    #[test]
    fn entry_must_be_in_an_executable_segment() {
        assert_eq!(refused(&craft(W + 0x5000, &[(W, 0x100, 0x100, 5)])), LoadError::EntryOutsideSegments(W + 0x5000));
        assert_eq!(refused(&craft(W, &[(W, 0x100, 0x100, 6)])), LoadError::EntryNotExecutable(W));
    }

    fn xshim_note() -> Vec<u8> {
        note_bytes(b"XSHIM", 1, &xshim_payload::abi::ABI_VERSION.to_le_bytes())
    }

    #[test]
    fn notes_are_read_and_malformed_notes_refused_at_once() {
        let good = craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&xshim_note()));
        assert_eq!(plan(&good).unwrap().abi_version, Some(xshim_payload::abi::ABI_VERSION));
        // The fuzz's hangs: namesz/descsz past the end, a name that is not UTF-8, p_align 16.
        let mut past = xshim_note();
        past[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(refused(&craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&past))), LoadError::BadNote { .. }));
        let mut huge = xshim_note();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(refused(&craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&huge))), LoadError::BadNote { .. }));
        let mut not_utf8 = xshim_note();
        not_utf8[12] = 0xff;
        assert_eq!(plan(&craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&not_utf8))).unwrap().abi_version, None, "an unknown owner is not ours, not an error");
        let mut align16 = craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&xshim_note()));
        align16[64 + 56 + 48] = 16;
        assert!(plan(&align16).is_ok(), "notes are 4-aligned whatever p_align says");
        // A Xen note in a payload: an image, not a payload (inspect, wrap and the shim agree).
        let xen = craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&note_bytes(b"Xen", 6, b"xshim\0\0\0")));
        assert_eq!(refused(&xen), LoadError::XenNotes);
        // An 8 MiB PT_NOTE.
        let mut big = craft_with_note(W, &[(W, 0x100, 0x100, 5)], Some(&xshim_note()));
        big[64 + 56 + 32..64 + 56 + 40].copy_from_slice(&(8u64 << 20).to_le_bytes());
        assert!(matches!(refused(&big), LoadError::BadNote { why: "larger than 64 KiB", .. }));
        // 20,000 program headers, 16,000 section headers: refused before any table is parsed.
        let mut many = good.clone();
        many[56..58].copy_from_slice(&20_000u16.to_le_bytes());
        assert!(matches!(refused(&many), LoadError::TooManyHeaders { phnum: 20_000, .. }));
        let mut many = good.clone();
        many[60..62].copy_from_slice(&16_000u16.to_le_bytes());
        assert!(matches!(refused(&many), LoadError::TooManyHeaders { shnum: 16_000, .. }));
    }

    /// A bounded mutation fuzz of the one validation the shim, `inspect` and `wrap` share: a
    /// fixed seed, 12,000 mutants of a payload with a note, each planned in bounded time.
    #[test]
    fn mutation_fuzz_of_the_validation_terminates_quickly() {
        let base = craft_with_note(W + 0x10, &[(W, 0x200, 0x200, 5), (W + 0x1000, 0x40, 0x3000, 6)], Some(&xshim_note()));
        let mut x = 0x9e37_79b9u32;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let t0 = std::time::Instant::now();
        let (mut accepted, mut refused_n, mut slowest) = (0, 0, std::time::Duration::ZERO);
        for _ in 0..12_000 {
            let mut b = base.clone();
            for _ in 0..1 + rnd() % 6 {
                let r = rnd() as usize;
                let i = r % b.len().min(400); // headers and the note: where parsers go wrong
                b[i] = match r >> 24 & 3 {
                    0 => (r >> 8) as u8,
                    1 => 0xff,
                    2 => 0,
                    _ => b[i] ^ (1 << (r >> 8 & 7)),
                };
            }
            let t = std::time::Instant::now();
            match plan(&b) {
                Ok(_) => accepted += 1,
                Err(_) => refused_n += 1,
            }
            slowest = slowest.max(t.elapsed());
        }
        assert!(slowest < std::time::Duration::from_millis(200), "one case took {slowest:?}");
        println!("checked: 12000 mutants in {:?} ({accepted} accepted, {refused_n} refused), slowest {slowest:?}", t0.elapsed());
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
