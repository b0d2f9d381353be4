//! `xshim wrap`: one bootable image = the shim ELF plus the payload as an extra PT_LOAD
//! segment at layout::EMBEDDED_PAYLOAD_BASE, behind an `EMBEDDED_PAYLOAD_MAGIC` header.
use goblin::elf::program_header::{ProgramHeader, PF_R, PT_LOAD};
use goblin::elf::Elf;
use scroll::Pwrite;
use xshim_shim::layout;

const PHDR_SIZE: u64 = 56;

pub fn wrap(shim: &[u8], payload: &[u8]) -> Result<Vec<u8>, String> {
    xshim_shim::loader::plan(payload).map_err(|e| format!("payload refused: {e}"))?;
    let elf = Elf::parse(shim).map_err(|e| format!("shim image is not a readable ELF: {e}"))?;
    if !elf.is_64 {
        return Err("shim image is not ELF64".into());
    }
    let notes = xshim_elf_notes::parse_xen(shim).map_err(|e| format!("shim image: {e}"))?;
    if !notes.iter().any(|n| n.note_type == xshim_elf_notes::ty::PHYS32_ENTRY) {
        return Err("shim image has no PHYS32_ENTRY note: is it the xshim kernel?".into());
    }
    let blob_len = layout::EMBEDDED_PAYLOAD_HEADER + payload.len() as u64;
    if blob_len > layout::EMBEDDED_PAYLOAD_LIMIT - layout::EMBEDDED_PAYLOAD_BASE {
        return Err(format!("payload of {} bytes does not fit the embedded-payload area (4 MiB)", payload.len()));
    }
    for ph in &elf.program_headers {
        if ph.p_type == PT_LOAD && ph.p_paddr < layout::EMBEDDED_PAYLOAD_LIMIT && ph.p_paddr.saturating_add(ph.p_memsz) > layout::EMBEDDED_PAYLOAD_BASE {
            return Err("image already has a segment in the embedded-payload area (already wrapped?)".into());
        }
    }
    // The new program header goes right after the existing ones: that space must be free.
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
    if slot.checked_add(PHDR_SIZE).is_none_or(|end| end > first_data) {
        return Err(format!("no room for another program header in the shim image (headers end at {slot:#x}, data starts at {first_data:#x})"));
    }
    let blob_off = (shim.len() as u64).div_ceil(0x1000) * 0x1000;
    let mut out = shim.to_vec();
    out.resize(blob_off as usize, 0);
    out.extend_from_slice(&layout::EMBEDDED_PAYLOAD_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    let ph = ProgramHeader {
        p_type: PT_LOAD,
        p_flags: PF_R,
        p_offset: blob_off,
        p_vaddr: layout::EMBEDDED_PAYLOAD_BASE,
        p_paddr: layout::EMBEDDED_PAYLOAD_BASE,
        p_filesz: blob_len,
        p_memsz: blob_len,
        p_align: 0x1000,
    };
    let ctx = goblin::container::Ctx::new(goblin::container::Container::Big, goblin::container::Endian::Little);
    out.pwrite_with(ph, slot as usize, ctx).map_err(|e| format!("writing the program header: {e}"))?;
    out[56..58].copy_from_slice(&((phnum + 1) as u16).to_le_bytes());
    Ok(out)
}

/// The payload embedded in a wrapped image, if any.
pub fn embedded_payload(image: &[u8]) -> Result<Option<&[u8]>, String> {
    let elf = Elf::parse(image).map_err(|e| format!("not a readable ELF: {e}"))?;
    let Some(ph) = elf.program_headers.iter().find(|p| p.p_type == PT_LOAD && p.p_paddr == layout::EMBEDDED_PAYLOAD_BASE) else {
        return Ok(None);
    };
    let end = ph.p_offset.checked_add(ph.p_filesz).filter(|&e| e <= image.len() as u64).ok_or("embedded payload segment is truncated")?;
    let blob = &image[ph.p_offset as usize..end as usize];
    if blob.len() < 16 || u64::from_le_bytes(blob[..8].try_into().unwrap()) != layout::EMBEDDED_PAYLOAD_MAGIC {
        return Err("segment at the embedded-payload address has no XSHIMPLD header".into());
    }
    let len = u64::from_le_bytes(blob[8..16].try_into().unwrap());
    let end = usize::try_from(len).ok().and_then(|l| l.checked_add(16));
    end.and_then(|e| blob.get(16..e)).map(Some).ok_or_else(|| "embedded payload is shorter than its header says".into())
}
