//! `xshim inspect`: what a shim image, a wrapped image or a payload ELF contains, and
//! whether the shim would accept it. Never panics on bad input.
use goblin::elf::Elf;
use serde_json::json;
use xshim_elf_notes::{type_name, NoteValue};

pub struct Report {
    pub kind: &'static str,
    pub json: serde_json::Value,
    pub text: String,
}

fn segments(elf: &Elf) -> Vec<serde_json::Value> {
    elf.program_headers
        .iter()
        .map(|p| {
            json!({
                "type": goblin::elf::program_header::pt_to_str(p.p_type),
                "paddr": format!("{:#x}", p.p_paddr),
                "filesz": p.p_filesz,
                "memsz": p.p_memsz,
                "flags": format!("{}{}{}", if p.p_flags & 4 != 0 { "R" } else { "-" }, if p.p_flags & 2 != 0 { "W" } else { "-" }, if p.p_flags & 1 != 0 { "X" } else { "-" }),
            })
        })
        .collect()
}

fn payload_json(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let plan = xshim_shim::loader::plan(bytes).map_err(|e| e.to_string())?;
    Ok(json!({
        "entry": format!("{:#x}", plan.entry),
        "abi_version": plan.abi_version,
        "segments": plan.segments.iter().map(|s| json!({"addr": format!("{:#x}", s.addr), "filesz": s.file_len, "memsz": s.mem_len, "exec": s.executable})).collect::<Vec<_>>(),
        "footprint": plan.footprint(),
    }))
}

pub fn inspect(bytes: &[u8]) -> Result<Report, String> {
    let elf = match Elf::parse(bytes) {
        Ok(elf) => elf,
        // An ELF that goblin cannot even parse: let the payload loader name the problem.
        Err(e) if bytes.starts_with(b"\x7fELF") => {
            return Err(match xshim_shim::loader::plan(bytes) {
                Err(le) => format!("payload refused: {le}"),
                Ok(_) => format!("not a readable ELF file: {e}"),
            })
        }
        Err(e) => return Err(format!("not a readable ELF file: {e}")),
    };
    // The notes through the same validation the shim and `wrap` use, so they cannot disagree.
    let notes: Vec<xshim_elf_notes::FoundNote> = xshim_shim::loader::segment_notes(&elf, bytes)
        .map_err(|e| format!("refused: {e}"))?
        .into_iter()
        .map(|n| xshim_elf_notes::FoundNote { owner: String::from_utf8_lossy(n.owner).into_owned(), note_type: n.note_type, desc: n.desc.to_vec() })
        .collect();
    let xen: Vec<_> = notes.iter().filter(|n| n.owner == "Xen").collect();
    let abi = notes.iter().find(|n| n.owner == "XSHIM" && n.note_type == 1).and_then(|n| match n.value() {
        NoteValue::Number(v) => Some(v),
        _ => None,
    });
    let mut text = String::new();
    if !xen.iter().any(|n| n.note_type == xshim_elf_notes::ty::PHYS32_ENTRY) {
        // A payload (one that carries Xen notes is refused by the loader, naming them).
        let p = payload_json(bytes).map_err(|e| format!("payload refused: {e}"))?;
        text.push_str(&format!("payload ELF: entry {}, payload ABI v{}\n", p["entry"].as_str().unwrap_or("?"), abi.map(|v| v.to_string()).unwrap_or_else(|| "unknown (no .note.xshim)".into())));
        for s in p["segments"].as_array().into_iter().flatten() {
            text.push_str(&format!("  segment {} filesz {} memsz {}{}\n", s["addr"].as_str().unwrap_or(""), s["filesz"], s["memsz"], if s["exec"].as_bool() == Some(true) { " exec" } else { "" }));
        }
        return Ok(Report { kind: "payload", json: json!({"kind": "payload", "payload": p, "segments": segments(&elf)}), text });
    }
    let embedded = crate::wrap::embedded_payload(bytes)?;
    let kind = if embedded.is_some() { "wrapped-image" } else { "shim" };
    text.push_str(&format!("{kind}: entry {:#x}, serves payload ABI v{}\n", elf.header.e_entry, abi.map(|v| v.to_string()).unwrap_or_else(|| "?".into())));
    text.push_str("Xen ELF notes:\n");
    let mut note_json = Vec::new();
    for n in &xen {
        text.push_str(&format!("  {:<16} {}\n", type_name(n.note_type), n.value()));
        note_json.push(json!({"type": n.note_type, "name": type_name(n.note_type), "value": n.value().to_string()}));
    }
    text.push_str("Segments:\n");
    let segs = segments(&elf);
    for s in &segs {
        text.push_str(&format!("  {:<8} {:>10} filesz {:>8} memsz {:>8} {}\n", s["type"].as_str().unwrap_or(""), s["paddr"].as_str().unwrap_or(""), s["filesz"], s["memsz"], s["flags"].as_str().unwrap_or("")));
    }
    let payload = match embedded {
        Some(p) => {
            let pj = payload_json(p).map_err(|e| format!("embedded payload refused: {e}"))?;
            text.push_str(&format!("Embedded payload: {} bytes, entry {}, ABI v{}\n", p.len(), pj["entry"].as_str().unwrap_or("?"), pj["abi_version"]));
            pj
        }
        None => serde_json::Value::Null,
    };
    Ok(Report { kind, json: json!({"kind": kind, "entry": format!("{:#x}", elf.header.e_entry), "abi_version": abi, "xen_notes": note_json, "segments": segs, "payload": payload}), text })
}
