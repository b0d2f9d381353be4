//! Reading `.note.Xen` back out of an ELF image (host tools; never panics on bad input).
use crate::ty;
use goblin::elf::Elf;
use std::fmt;

/// One Xen note as found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundNote {
    pub owner: String,
    pub note_type: u32,
    pub desc: Vec<u8>,
}

/// Why an image's notes could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteError {
    NotElf(String),
    BadNote(String),
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteError::NotElf(e) => write!(f, "not a readable ELF file: {e}"),
            NoteError::BadNote(e) => write!(f, "malformed ELF note: {e}"),
        }
    }
}
impl std::error::Error for NoteError {}

/// Xen's name for a note type, as `readnotes` prints it.
pub fn type_name(note_type: u32) -> &'static str {
    match note_type {
        ty::INFO => "INFO",
        ty::ENTRY => "ENTRY",
        ty::HYPERCALL_PAGE => "HYPERCALL_PAGE",
        ty::VIRT_BASE => "VIRT_BASE",
        ty::PADDR_OFFSET => "PADDR_OFFSET",
        ty::XEN_VERSION => "XEN_VERSION",
        ty::GUEST_OS => "GUEST_OS",
        ty::GUEST_VERSION => "GUEST_VERSION",
        ty::LOADER => "LOADER",
        ty::PAE_MODE => "PAE_MODE",
        ty::FEATURES => "FEATURES",
        ty::BSD_SYMTAB => "BSD_SYMTAB",
        ty::HV_START_LOW => "HV_START_LOW",
        ty::L1_MFN_VALID => "L1_MFN_VALID",
        ty::SUSPEND_CANCEL => "SUSPEND_CANCEL",
        ty::INIT_P2M => "INIT_P2M",
        ty::MOD_START_PFN => "MOD_START_PFN",
        ty::SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        ty::PHYS32_ENTRY => "PHYS32_ENTRY",
        _ => "UNKNOWN",
    }
}

impl FoundNote {
    /// The descriptor as text (string notes) or as a number (numeric notes).
    pub fn value(&self) -> NoteValue {
        let is_string = matches!(
            self.note_type,
            ty::GUEST_OS | ty::GUEST_VERSION | ty::XEN_VERSION | ty::LOADER | ty::PAE_MODE | ty::FEATURES | ty::BSD_SYMTAB
        );
        if is_string {
            let end = self.desc.iter().position(|&b| b == 0).unwrap_or(self.desc.len());
            return NoteValue::Text(String::from_utf8_lossy(&self.desc[..end]).into_owned());
        }
        match self.desc.len() {
            4 => NoteValue::Number(u32::from_le_bytes(self.desc[..4].try_into().unwrap()) as u64),
            8 => NoteValue::Number(u64::from_le_bytes(self.desc[..8].try_into().unwrap())),
            _ => NoteValue::Bytes(self.desc.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoteValue {
    Text(String),
    Number(u64),
    Bytes(Vec<u8>),
}

impl fmt::Display for NoteValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteValue::Text(s) => write!(f, "\"{s}\""),
            NoteValue::Number(n) => write!(f, "{n:#x}"),
            NoteValue::Bytes(b) => {
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// All notes of an ELF image from its PT_NOTE segments (as Xen's loader reads them),
/// falling back to SHT_NOTE sections.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<FoundNote>, NoteError> {
    let elf = Elf::parse(bytes).map_err(|e| NoteError::NotElf(e.to_string()))?;
    let mut out = Vec::new();
    let iter = elf.iter_note_headers(bytes).or_else(|| elf.iter_note_sections(bytes, None));
    if let Some(iter) = iter {
        for note in iter {
            let note = note.map_err(|e| NoteError::BadNote(e.to_string()))?;
            out.push(FoundNote {
                owner: note.name.trim_end_matches('\0').to_string(),
                note_type: note.n_type,
                desc: note.desc.to_vec(),
            });
        }
    }
    Ok(out)
}

/// Only the notes owned by "Xen".
pub fn parse_xen(bytes: &[u8]) -> Result<Vec<FoundNote>, NoteError> {
    Ok(parse_all(bytes)?.into_iter().filter(|n| n.owner == "Xen").collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{padded_len, padded_str, XenNote};

    #[test]
    fn note_layout_is_4_byte_aligned_with_padded_string() {
        let n = XenNote::with_descsz(ty::GUEST_OS, padded_str::<{ padded_len(5) }>("xshim"), 6);
        assert_eq!(core::mem::align_of_val(&n), 4);
        assert_eq!(core::mem::size_of_val(&n), 12 + 4 + 8);
        let n32 = XenNote::new(ty::PHYS32_ENTRY, 0x100000u32.to_le_bytes());
        assert_eq!(core::mem::size_of_val(&n32), 12 + 4 + 4);
        let n64 = XenNote::new(ty::ENTRY, 0x100200u64.to_le_bytes());
        assert_eq!((core::mem::size_of_val(&n64), core::mem::align_of_val(&n64)), (12 + 4 + 8, 4));
        println!("checked: note header 12 bytes, name 4, string desc padded to 8, u32 desc 4, u64 desc 8 and still 4-aligned");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\x7fELF", &[0xffu8; 64][..]] {
            assert!(parse_all(bytes).is_err());
        }
    }

    #[test]
    fn type_names_match_readnotes() {
        assert_eq!(type_name(18), "PHYS32_ENTRY");
        assert_eq!(type_name(6), "GUEST_OS");
        assert_eq!(type_name(0x1234), "UNKNOWN");
    }
}
