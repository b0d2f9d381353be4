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

/// The shim's attacks on itself (`xshim.selftest=KIND`, after its protection is on): for
/// each, the line it logs first; each must end in a page fault, a shim exception.
pub const SHIM_SELFTESTS: [(&str, &str); 2] = [("text-write", "selftest: writing the shim's own text at "), ("data-exec", "selftest: executing the shim's own data at ")];

/// Checks a console for a self-test that faulted as it must: the selftest line, then a page
/// fault (#14) at the address it names, then the crash. `Ok(summary)` or `Err(why)`.
pub fn selftest_verdict(kind: &str, console: &str) -> Result<String, String> {
    let Some((_, phrase)) = SHIM_SELFTESTS.iter().find(|(k, _)| *k == kind) else { return Err(format!("unknown selftest {kind}")) };
    let addr = console.lines().find_map(|l| l.split(phrase).nth(1)).and_then(|a| u64::from_str_radix(a.trim().trim_start_matches("0x"), 16).ok());
    let Some(addr) = addr else { return Err(format!("no \"{phrase}\" line")) };
    let fault = console.lines().find(|l| l.contains("shim exception #14 (page fault)")).unwrap_or("");
    if console.contains("did not fault") {
        return Err("the self-attack did not fault: the shim's memory is not protected".into());
    }
    // Under Xen PVH in the lab (QEMU/TCG) CR2 reads 0 for faults Xen does not intercept: a
    // write to a present page (error code 3) with CR2 0 is then the evidence.
    let at_addr = fault.contains(&format!("cr2={addr:#018x}"))
        || (kind == "data-exec" && fault.contains(&format!("rip={addr:#018x}")))
        || (kind == "text-write" && fault.contains("error_code=0x3 ") && fault.contains("cr2=0x0000000000000000"));
    if fault.is_empty() || !at_addr || !console.contains("crashing the domain: shim exception") {
        return Err(format!("no page fault at {addr:#x} reported as a shim exception (\"{}\")", fault.trim()));
    }
    Ok(format!("{kind} at {addr:#x} faulted: {}", fault.trim()))
}
