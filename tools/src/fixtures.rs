//! Crafted bad payloads for tests: each is a real ELF with one thing wrong, named after it.
use xshim_shim::layout;

/// A minimal ELF64 x86-64 executable with PT_LOAD segments (vaddr, filesz, memsz, flags).
pub fn craft(entry: u64, segs: &[(u64, u64, u64, u32)]) -> Vec<u8> {
    let phoff = 64u64;
    let data_start = phoff + 56 * segs.len() as u64;
    let mut out = vec![0u8; data_start as usize];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&phoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    let mut off = data_start;
    for (i, &(vaddr, filesz, memsz, flags)) in segs.iter().enumerate() {
        let ph = (phoff + 56 * i as u64) as usize;
        out[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
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

/// (name, bytes, a phrase the refusal must contain).
pub fn bad_payloads(good: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let w = layout::PAYLOAD_WINDOW_BASE;
    let mut wrong_machine = good.to_vec();
    wrong_machine[18..20].copy_from_slice(&3u16.to_le_bytes());
    vec![
        ("truncated", good[..good.len().min(200)].to_vec(), "truncated"),
        ("wrong-machine", wrong_machine, "wrong machine"),
        ("overlapping-segments", craft(w, &[(w, 0x1000, 0x1000, 5), (w + 0x800, 0x100, 0x100, 6)]), "overlap"),
        ("entry-outside-segments", craft(w + 0x10_0000, &[(w, 0x1000, 0x1000, 5)]), "outside every loaded segment"),
        ("segment-over-shim", craft(layout::SHIM_BASE, &[(layout::SHIM_BASE, 0x100, 0x100, 5)]), "overlaps the shim"),
    ]
}
