//! Which memory a payload may name in an ABI call: its window (segments), its stack, and the
//! regions granted to it. Every pointer+length from a payload is checked here before use.
use xshim_payload::abi::MemRegion;

/// The payload's accessible ranges, `[base, base + len)`.
#[derive(Debug, Clone, Copy)]
pub struct PayloadMemory<'a> {
    pub window: MemRegion,
    pub stack: MemRegion,
    pub regions: &'a [MemRegion],
}

impl PayloadMemory<'_> {
    /// True if `[ptr, ptr + len)` lies entirely inside one accessible range (no overflow).
    /// A zero-length buffer is allowed anywhere inside a range, or at address 0 (no access).
    pub fn contains(&self, ptr: u64, len: u64) -> bool {
        if len == 0 {
            return true;
        }
        let Some(end) = ptr.checked_add(len) else { return false };
        let inside = |r: &MemRegion| ptr >= r.base && r.base.checked_add(r.len).is_some_and(|re| end <= re);
        inside(&self.window) || inside(&self.stack) || self.regions.iter().any(inside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        let regions = [MemRegion { base: 0x100_0000, len: 0x10_0000 }];
        let m = PayloadMemory {
            window: MemRegion { base: 0x80_0000, len: 0x80_0000 },
            stack: MemRegion { base: 0x20_0000, len: 0x1000 },
            regions: &regions,
        };
        assert!(m.contains(0x80_0000, 16));
        assert!(m.contains(0x20_0ff0, 16));
        assert!(!m.contains(0x20_0ff8, 16), "straddles the end of the stack");
        assert!(!m.contains(0x10, 16));
        assert!(!m.contains(u64::MAX - 4, 16), "wraps around");
        assert!(!m.contains(0x100_0000, 0x10_0001));
        assert!(!m.contains(0xff_fff0, 0x20), "spans two ranges but is not inside one");
        assert!(m.contains(0, 0));
        println!("checked: in-range, straddling, wrapping and zero-length buffers");
    }
}
