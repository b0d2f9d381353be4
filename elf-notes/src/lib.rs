//! Xen ELF notes (`.note.Xen`), as defined by Xen's public header `xen/elfnote.h`.
//! The shim emits its notes with [`XenNote`] statics; the tools read them back with [`parse`].
#![cfg_attr(not(feature = "parse"), no_std)]

/// Note types from xen/include/public/elfnote.h.
pub mod ty {
    pub const INFO: u32 = 0;
    pub const ENTRY: u32 = 1;
    pub const HYPERCALL_PAGE: u32 = 2;
    pub const VIRT_BASE: u32 = 3;
    pub const PADDR_OFFSET: u32 = 4;
    pub const XEN_VERSION: u32 = 5;
    pub const GUEST_OS: u32 = 6;
    pub const GUEST_VERSION: u32 = 7;
    pub const LOADER: u32 = 8;
    pub const PAE_MODE: u32 = 9;
    pub const FEATURES: u32 = 10;
    pub const BSD_SYMTAB: u32 = 11;
    pub const HV_START_LOW: u32 = 12;
    pub const L1_MFN_VALID: u32 = 13;
    pub const SUSPEND_CANCEL: u32 = 14;
    pub const INIT_P2M: u32 = 15;
    pub const MOD_START_PFN: u32 = 16;
    pub const SUPPORTED_FEATURES: u32 = 17;
    pub const PHYS32_ENTRY: u32 = 18;
}

/// xshim's own note, owner name "XSHIM": the payload ABI version the shim serves.
pub const XSHIM_NOTE_NAME: &[u8] = b"XSHIM\0";
pub const XSHIM_NOTE_ABI_VERSION: u32 = 1;

/// The name of every Xen note, NUL included.
pub const XEN_NOTE_NAME: [u8; 4] = *b"Xen\0";

/// One complete ELF note with owner "Xen" and a descriptor of type `D`.
/// `align(4)`: note fields are 4-byte aligned whatever the segment's p_align says
/// (an 8-byte-aligned note broke PVH boot elsewhere).
#[repr(C, align(4))]
pub struct XenNote<D> {
    namesz: u32,
    descsz: u32,
    note_type: u32,
    name: [u8; 4],
    desc: D,
}

impl<D> XenNote<D> {
    /// A note whose descriptor is all of `desc` (a `u32`, a `u64`).
    pub const fn new(note_type: u32, desc: D) -> Self {
        Self::with_descsz(note_type, desc, core::mem::size_of::<D>() as u32)
    }

    /// A note whose descriptor is the first `descsz` bytes of `desc` (a padded string).
    pub const fn with_descsz(note_type: u32, desc: D, descsz: u32) -> Self {
        assert!(core::mem::size_of::<D>().is_multiple_of(4), "descriptor must be padded to 4 bytes");
        // A u64 descriptor would make the note 8-aligned, and the linker would pad between
        // notes: readers then lose their place (that is how an 8-aligned note breaks loaders).
        assert!(core::mem::align_of::<D>() <= 4, "descriptor must be 4-byte aligned: store wide values as bytes");
        assert!(descsz as usize <= core::mem::size_of::<D>());
        XenNote { namesz: 4, descsz, note_type, name: XEN_NOTE_NAME, desc }
    }
}

/// A NUL-terminated string descriptor padded to a multiple of 4 bytes.
/// `N` must be the padded length; see [`xen_note_str!`].
pub const fn padded_str<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    assert!(bytes.len() < N, "string does not fit with its NUL");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The padded descriptor length for a string of `len` bytes plus NUL.
pub const fn padded_len(len: usize) -> usize {
    (len + 1).div_ceil(4) * 4
}

/// Emits a string note into `.note.Xen`: `xen_note_str!(GUEST_OS_NOTE, ty::GUEST_OS, "xshim");`
#[macro_export]
macro_rules! xen_note_str {
    ($name:ident, $ty:expr, $s:expr) => {
        #[used]
        #[link_section = ".note.Xen"]
        static $name: $crate::XenNote<[u8; $crate::padded_len($s.len())]> = $crate::XenNote::with_descsz(
            $ty,
            $crate::padded_str::<{ $crate::padded_len($s.len()) }>($s),
            ($s.len() + 1) as u32,
        );
    };
}

/// Emits a numeric note into `.note.Xen`: `xen_note_num!(ENTRY_NOTE, ty::PHYS32_ENTRY, u32, 0x100000);`
/// The value is stored as little-endian bytes, so 64-bit values keep the note 4-byte aligned.
#[macro_export]
macro_rules! xen_note_num {
    ($name:ident, $ty:expr, $int:ty, $val:expr) => {
        #[used]
        #[link_section = ".note.Xen"]
        static $name: $crate::XenNote<[u8; core::mem::size_of::<$int>()]> = $crate::XenNote::new($ty, (($val) as $int).to_le_bytes());
    };
}

#[cfg(feature = "parse")]
mod parse;
#[cfg(feature = "parse")]
pub use parse::*;
