//! Crafted bad payloads for tests: each is a real ELF with one thing wrong, named after it.
use xshim_shim::layout;
use xshim_shim::loader::{craft, craft_with_note, note_bytes};

/// (name, bytes, a phrase the refusal must contain).
pub fn bad_payloads(good: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let w = layout::PAYLOAD_WINDOW_BASE;
    let mut note_past_end = note_bytes(b"XSHIM", 1, &1u32.to_le_bytes());
    note_past_end[4..8].copy_from_slice(&0x4000u32.to_le_bytes());
    let mut too_many = good.to_vec();
    too_many[56..58].copy_from_slice(&20_000u16.to_le_bytes());
    let mut wrong_machine = good.to_vec();
    wrong_machine[18..20].copy_from_slice(&3u16.to_le_bytes());
    vec![
        ("truncated", good[..good.len().min(200)].to_vec(), "truncated"),
        ("wrong-machine", wrong_machine, "wrong machine"),
        ("overlapping-segments", craft(w, &[(w, 0x1000, 0x1000, 5), (w + 0x800, 0x100, 0x100, 6)]), "overlap"),
        ("entry-outside-segments", craft(w + 0x10_0000, &[(w, 0x1000, 0x1000, 5)]), "outside every loaded segment"),
        ("segment-over-shim", craft(layout::SHIM_BASE, &[(layout::SHIM_BASE, 0x100, 0x100, 5)]), "overlaps the shim"),
        // Found by the mutation fuzz: these hung the shim's loader and `xshim wrap` forever.
        ("note-past-segment", craft_with_note(w, &[(w, 0x100, 0x100, 5)], Some(&note_past_end)), "PT_NOTE"),
        ("xen-notes", craft_with_note(w, &[(w, 0x100, 0x100, 5)], Some(&note_bytes(b"Xen", 6, b"xshim\0\0\0"))), "Xen ELF notes"),
        ("too-many-headers", too_many, "program headers"),
    ]
}

/// The attacks `hello` makes on the shim (`fault=KIND`): for each, the line the shim must
/// print, in every mode. Each ends in a clean crash, with the shim's record intact.
pub const PAYLOAD_ATTACKS: [(&str, &str); 4] = [
    ("stack", "payload stack overflow at "),
    ("shim-data", "payload fault: page fault writing "),
    ("gate", "payload fault: page fault writing "),
    ("cli", "payload fault: general protection "),
];

/// The line that shows the payload did not reach the shim's own record of its memory.
pub const SHIM_RECORD_INTACT: &str = "the shim's record of the payload's memory is intact: window 0x800000..0x1000000";
