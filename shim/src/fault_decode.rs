//! Where a faulting instruction touched memory, from its bytes and the registers saved at the
//! fault. Needed because under Xen PVH inside QEMU/TCG (the lab) a page fault that Xen does
//! not intercept reaches the guest with CR2 left at 0, and demand population must know which
//! page to populate. Decoding and the effective-address arithmetic are iced-x86's.
use alloc::vec::Vec;
use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, Register};

/// The general registers at the fault (the trap frame's values).
#[derive(Debug, Clone, Copy, Default)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
}

impl Registers {
    /// A register's value as an address component; segment bases are 0 (a payload in user
    /// mode cannot set FS or GS bases: WRFSBASE is off and the MSRs are privileged).
    fn value(&self, r: Register) -> Option<u64> {
        use Register as R;
        let full = match r.full_register() {
            R::RAX => self.rax,
            R::RBX => self.rbx,
            R::RCX => self.rcx,
            R::RDX => self.rdx,
            R::RSI => self.rsi,
            R::RDI => self.rdi,
            R::RBP => self.rbp,
            R::RSP => self.rsp,
            R::R8 => self.r8,
            R::R9 => self.r9,
            R::R10 => self.r10,
            R::R11 => self.r11,
            R::R12 => self.r12,
            R::R13 => self.r13,
            R::R14 => self.r14,
            R::R15 => self.r15,
            R::RIP => self.rip,
            R::ES | R::CS | R::SS | R::DS | R::FS | R::GS => return Some(0),
            _ => return None,
        };
        // A 32-bit address-size override names EAX..R15D: the low half.
        Some(if r.is_gpr32() { full & 0xffff_ffff } else { full })
    }
}

/// One memory access of an instruction: its first byte and its size in bytes (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub addr: u64,
    pub len: u64,
}

/// The memory an instruction at `regs.rip` (its bytes `code`, up to 15) reads or writes,
/// with the registers it faulted with: explicit operands, and implicit ones (a string
/// instruction's [rsi]/[rdi], a push's stack slot). Empty if the bytes do not decode.
pub fn accesses(code: &[u8], regs: &Registers) -> Vec<Access> {
    let mut decoder = Decoder::with_ip(64, code, regs.rip, DecoderOptions::NONE);
    let ins = decoder.decode();
    if ins.is_invalid() {
        return Vec::new();
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(&ins);
    info.used_memory()
        .iter()
        .filter_map(|m| {
            let addr = m.virtual_address(0, |r, _, _| regs.value(r))?;
            Some(Access { addr, len: (m.memory_size().size() as u64).max(1) })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> Registers {
        Registers { rdi: 0x100_0000, rsi: 0x200_0000, rcx: 3, rsp: 0x34_cc80, rip: 0x80_0b06, ..Default::default() }
    }

    #[test]
    fn explicit_operands() {
        // mov [rdi], rax
        assert_eq!(accesses(&[0x48, 0x89, 0x07], &regs()), vec![Access { addr: 0x100_0000, len: 8 }]);
        // mov eax, [rdi + rcx*8 + 0x10]
        assert_eq!(accesses(&[0x8b, 0x44, 0xcf, 0x10], &regs()), vec![Access { addr: 0x100_0000 + 24 + 0x10, len: 4 }]);
        // add [rip + 0x100], al: RIP-relative from the next instruction
        assert_eq!(accesses(&[0x00, 0x05, 0x00, 0x01, 0x00, 0x00], &regs()), vec![Access { addr: 0x80_0b06 + 6 + 0x100, len: 1 }]);
        println!("checked explicit memory operands: base, base+index*scale+disp, RIP-relative");
    }

    #[test]
    fn implicit_operands() {
        // rep movsb: reads [rsi], writes [rdi]
        let a = accesses(&[0xf3, 0xa4], &regs());
        assert!(a.contains(&Access { addr: 0x200_0000, len: 1 }) && a.contains(&Access { addr: 0x100_0000, len: 1 }), "{a:?}");
        // push rax: the slot below rsp
        assert_eq!(accesses(&[0x50], &regs()), vec![Access { addr: 0x34_cc78, len: 8 }]);
        // mov eax, [edi]: 32-bit addressing takes the low half
        let r = Registers { rdi: 0xffff_ffff_0000_1000, ..regs() };
        assert_eq!(accesses(&[0x67, 0x8b, 0x07], &r), vec![Access { addr: 0x1000, len: 4 }]);
        println!("checked implicit operands: string instructions, push, 32-bit addressing");
    }

    #[test]
    fn no_memory_or_garbage() {
        assert_eq!(accesses(&[0x48, 0x89, 0xc7], &regs()), vec![], "mov rdi, rax: no memory");
        assert_eq!(accesses(&[0x0f, 0xff], &regs()), vec![], "undecodable");
        assert_eq!(accesses(&[0x48], &regs()), vec![], "truncated");
        println!("checked instructions with no memory operand, undecodable and truncated bytes");
    }
}
