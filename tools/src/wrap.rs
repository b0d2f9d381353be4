//! `xshim wrap`: one bootable image = the shim ELF plus the payload as an extra PT_LOAD
//! segment at layout::EMBEDDED_PAYLOAD_BASE, behind an `EMBEDDED_PAYLOAD_MAGIC` header.
use goblin::elf::program_header::{ProgramHeader, PF_R, PT_LOAD};
use goblin::elf::Elf;
use scroll::Pwrite;
use xshim_shim::layout;

const PHDR_SIZE: u64 = 56;

pub fn wrap(shim: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    let plan = xshim_shim::loader::plan(payload).map_err(|e| format!("payload refused: {e}"))?;
    let elf = Elf::parse(shim).map_err(|e| format!("shim image is not a readable ELF: {e}"))?;
    if !elf.is_64 {
        return Err("shim image is not ELF64".into());
    }
    let notes = xshim_elf_notes::parse_xen(shim).map_err(|e| format!("shim image: {e}"))?;
    if !notes.iter().any(|n| n.note_type == xshim_elf_notes::ty::PHYS32_ENTRY) {
        return Err("shim image has no PHYS32_ENTRY note: is it the xshim kernel?".into());
    }
    // The header page at EMBEDDED_PAYLOAD_BASE; the ELF bytes just above the payload's
    // window, so the loader copies the segments straight out of them, and Xen's PV
    // start-of-day pages (placed after the image's end) land above both.
    let header_at = layout::EMBEDDED_PAYLOAD_BASE;
    let bytes_at = layout::embedded_payload_addr(plan.segments_end());
    for ph in &elf.program_headers {
        if ph.p_type == PT_LOAD && ph.p_paddr.saturating_add(ph.p_memsz) > header_at {
            return Err(format!("image already has a segment at or above {header_at:#x} (already wrapped?)"));
        }
    }
    // The two new program headers go right after the existing ones: that space must be free.
    let phoff = elf.header.e_phoff;
    let phnum = elf.header.e_phnum as u64;
    let slot = phnum.checked_mul(PHDR_SIZE).and_then(|n| phoff.checked_add(n)).ok_or("shim image: program header table offset overflows")?;
    let first_data = elf
        .program_headers
        .iter()
        .filter(|p| p.p_filesz > 0 && p.p_offset > 0)
        .map(|p| p.p_offset)
        .chain(elf.section_headers.iter().filter(|s| s.sh_type != goblin::elf::section_header::SHT_NOBITS && s.sh_offset > 0).map(|s| s.sh_offset))
        .min()
        .unwrap_or(shim.len() as u64);
    if slot.checked_add(2 * PHDR_SIZE).is_none_or(|end| end > first_data) {
        return Err(format!("no room for two more program headers in the shim image (headers end at {slot:#x}, data starts at {first_data:#x})"));
    }
    let header_off = (shim.len() as u64).div_ceil(0x1000) * 0x1000;
    let bytes_off = header_off + 0x1000;
    let mut out = shim.to_vec();
    out.resize(header_off as usize, 0);
    out.extend_from_slice(&layout::EMBEDDED_PAYLOAD_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&bytes_at.to_le_bytes());
    out.resize(bytes_off as usize, 0);
    out.extend_from_slice(payload);
    let segment = |offset: u64, addr: u64, len: u64| ProgramHeader { p_type: PT_LOAD, p_flags: PF_R, p_offset: offset, p_vaddr: addr, p_paddr: addr, p_filesz: len, p_memsz: len, p_align: 0x1000 };
    let ctx = goblin::container::Ctx::new(goblin::container::Container::Big, goblin::container::Endian::Little);
    out.pwrite_with(segment(header_off, header_at, layout::EMBEDDED_PAYLOAD_HEADER), slot as usize, ctx).map_err(|e| format!("writing a program header: {e}"))?;
    out.pwrite_with(segment(bytes_off, bytes_at, payload.len() as u64), (slot + PHDR_SIZE) as usize, ctx).map_err(|e| format!("writing a program header: {e}"))?;
    out[56..58].copy_from_slice(&((phnum + 2) as u16).to_le_bytes());
    Ok(out)
}

/// The payload embedded in a wrapped image, if any.
pub fn embedded_payload(image: &[u8]) -> Result<Option<&[u8]>, String> {
    let elf = Elf::parse(image).map_err(|e| format!("not a readable ELF: {e}"))?;
    let file = |ph: &ProgramHeader| -> Result<&[u8], String> {
        let end = ph.p_offset.checked_add(ph.p_filesz).filter(|&e| e <= image.len() as u64).ok_or("embedded payload segment is truncated")?;
        Ok(&image[ph.p_offset as usize..end as usize])
    };
    let Some(ph) = elf.program_headers.iter().find(|p| p.p_type == PT_LOAD && p.p_paddr == layout::EMBEDDED_PAYLOAD_BASE) else {
        return Ok(None);
    };
    let header = file(ph)?;
    if header.len() < layout::EMBEDDED_PAYLOAD_HEADER as usize || u64::from_le_bytes(header[..8].try_into().unwrap()) != layout::EMBEDDED_PAYLOAD_MAGIC {
        return Err("segment at the embedded-payload address has no XSHIMPL2 header (wrapped by an older xshim? wrap it again)".into());
    }
    let len = u64::from_le_bytes(header[8..16].try_into().unwrap());
    let at = u64::from_le_bytes(header[16..24].try_into().unwrap());
    let ph = elf.program_headers.iter().find(|p| p.p_type == PT_LOAD && p.p_paddr == at).ok_or_else(|| format!("the embedded payload header points at {at:#x}, where no segment is"))?;
    let bytes = file(ph)?;
    bytes.get(..len as usize).map(Some).ok_or_else(|| "embedded payload is shorter than its header says".into())
}
