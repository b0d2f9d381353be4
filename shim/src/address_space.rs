//! Who may touch which page, decided once at boot: the shim's text read-only, its data
//! no-execute, all of it supervisor-only; the payload's window, stack, free regions and the
//! call-gate page user-accessible; a guard page below the payload's stack mapped not at all.
//! Pure: the bare-metal side turns each page's `Access` into page-table entries (PVH and
//! native: its own tables; PV: Xen's tables and a separate user-mode table).
use crate::layout::PAGE_SIZE;
use alloc::vec::Vec;

/// What a page allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Not mapped: any access faults (the payload stack's guard page).
    None,
    /// Shim text: supervisor, read and execute.
    KernelCode,
    /// Shim read-only data: supervisor, read.
    KernelRead,
    /// Shim data, and everything that is neither shim nor payload: supervisor, read/write.
    KernelData,
    /// The call gate's user stub: user, read and execute.
    UserCode,
    /// The payload's stack: user, read/write, no execute.
    UserData,
    /// The payload's window and free memory: user, read/write/execute (a payload may load or
    /// generate code anywhere in memory it owns).
    UserAll,
}

impl Access {
    pub fn present(self) -> bool {
        self != Access::None
    }
    pub fn user(self) -> bool {
        matches!(self, Access::UserCode | Access::UserData | Access::UserAll)
    }
    pub fn writable(self) -> bool {
        matches!(self, Access::KernelData | Access::UserData | Access::UserAll)
    }
    pub fn executable(self) -> bool {
        matches!(self, Access::KernelCode | Access::UserCode | Access::UserAll)
    }
}

/// A page-aligned range `[start, end)` with one access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub access: Access,
}

/// Why a plan is refused (a bug in the caller's layout, never input from outside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    Unaligned(Span),
    Overlap(Span, Span),
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PlanError::Unaligned(s) => write!(f, "span {:#x}..{:#x} ({:?}) is not page-aligned", s.start, s.end, s.access),
            PlanError::Overlap(a, b) => write!(f, "spans {:#x}..{:#x} ({:?}) and {:#x}..{:#x} ({:?}) overlap", a.start, a.end, a.access, b.start, b.end, b.access),
        }
    }
}

/// The access of every page: the listed spans, `KernelData` everywhere else.
#[derive(Debug, Clone)]
pub struct AddressSpace {
    spans: Vec<Span>,
}

impl AddressSpace {
    /// Sorts the spans and checks they are page-aligned and disjoint. Empty spans are dropped.
    pub fn new(mut spans: Vec<Span>) -> Result<AddressSpace, PlanError> {
        spans.retain(|s| s.end > s.start);
        spans.sort_by_key(|s| s.start);
        for s in &spans {
            if s.start % PAGE_SIZE != 0 || s.end % PAGE_SIZE != 0 {
                return Err(PlanError::Unaligned(*s));
            }
        }
        for w in spans.windows(2) {
            if w[1].start < w[0].end {
                return Err(PlanError::Overlap(w[0], w[1]));
            }
        }
        Ok(AddressSpace { spans })
    }

    /// The access of the page holding `addr`.
    pub fn access_at(&self, addr: u64) -> Access {
        let i = self.spans.partition_point(|s| s.end <= addr);
        match self.spans.get(i) {
            Some(s) if s.start <= addr => s.access,
            _ => Access::KernelData,
        }
    }

    /// `Some(access)` if every page of `[start, start + len)` has it (then one large page can
    /// map the range), `None` if they differ.
    pub fn uniform(&self, start: u64, len: u64) -> Option<Access> {
        let end = start + len;
        let mut seen: Option<Access> = None;
        let mut agree = |a: Access| match seen {
            None => {
                seen = Some(a);
                true
            }
            Some(b) => a == b,
        };
        let mut cursor = start;
        for s in self.spans[self.spans.partition_point(|s| s.end <= start)..].iter().take_while(|s| s.start < end) {
            // A stretch no span covers has the default access.
            if s.start > cursor && !agree(Access::KernelData) {
                return None;
            }
            if !agree(s.access) {
                return None;
            }
            cursor = s.end;
        }
        if cursor < end && !agree(Access::KernelData) {
            return None;
        }
        seen
    }

    /// The spans, in address order.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }
}

/// Rounds a byte range out to whole pages.
pub fn page_span(start: u64, end: u64, access: Access) -> Span {
    Span { start: start & !(PAGE_SIZE - 1), end: end.div_ceil(PAGE_SIZE) * PAGE_SIZE, access }
}

#[cfg(test)]
mod tests {
    use super::*;
    const MB2: u64 = 2 << 20;

    fn shim_like() -> AddressSpace {
        AddressSpace::new(alloc::vec![
            Span { start: 0x10_0000, end: 0x13_0000, access: Access::KernelCode },
            Span { start: 0x13_0000, end: 0x13_1000, access: Access::UserCode },
            Span { start: 0x13_1000, end: 0x15_0000, access: Access::KernelRead },
            Span { start: 0x20_0000, end: 0x20_1000, access: Access::None },
            Span { start: 0x20_1000, end: 0x24_1000, access: Access::UserData },
            Span { start: 0x80_0000, end: 0x100_0000, access: Access::UserAll },
            Span { start: 0x100_0000, end: 0x7fe_0000, access: Access::UserAll },
        ])
        .unwrap()
    }

    #[test]
    fn access_per_page() {
        let a = shim_like();
        assert_eq!(a.access_at(0), Access::KernelData);
        assert_eq!(a.access_at(0x10_0fff), Access::KernelCode);
        assert_eq!(a.access_at(0x13_0800), Access::UserCode);
        assert_eq!(a.access_at(0x15_0000), Access::KernelData);
        assert_eq!(a.access_at(0x20_0fff), Access::None);
        assert_eq!(a.access_at(0x24_0fff), Access::UserData);
        assert_eq!(a.access_at(0x24_1000), Access::KernelData);
        assert_eq!(a.access_at(0x7fd_ffff), Access::UserAll);
        assert_eq!(a.access_at(0x7fe_0000), Access::KernelData);
        assert_eq!(a.access_at(u64::MAX), Access::KernelData);
        println!("checked the access of pages inside, between and beyond spans");
    }

    #[test]
    fn large_pages_only_where_uniform() {
        let a = shim_like();
        assert_eq!(a.uniform(0, MB2), None, "shim text starts at 1 MiB");
        assert_eq!(a.uniform(MB2, MB2), None, "guard page and stack");
        assert_eq!(a.uniform(2 * MB2, MB2), Some(Access::KernelData), "the embedded payload's area");
        assert_eq!(a.uniform(4 * MB2, MB2), Some(Access::UserAll), "the window");
        assert_eq!(a.uniform(8 * MB2, MB2), Some(Access::UserAll), "window and free memory meet: the same access");
        assert_eq!(a.uniform(0x7e0_0000, MB2), None, "free memory ends inside");
        assert_eq!(a.uniform(0x800_0000, MB2), Some(Access::KernelData), "beyond RAM");
        // Adjacent spans of the same access with a hole between them are not uniform.
        let holed = AddressSpace::new(alloc::vec![
            Span { start: 0, end: 0x1000, access: Access::UserAll },
            Span { start: 0x2000, end: MB2, access: Access::UserAll },
        ])
        .unwrap();
        assert_eq!(holed.uniform(0, MB2), None);
        println!("checked which 2 MiB pages can be mapped whole");
    }

    #[test]
    fn plans_that_are_bugs_are_refused() {
        let bad = AddressSpace::new(alloc::vec![Span { start: 0x1000, end: 0x1800, access: Access::UserAll }]);
        assert!(matches!(bad, Err(PlanError::Unaligned(_))));
        let overlap = AddressSpace::new(alloc::vec![
            Span { start: 0x1000, end: 0x3000, access: Access::UserAll },
            Span { start: 0x2000, end: 0x4000, access: Access::KernelCode },
        ]);
        assert!(matches!(overlap, Err(PlanError::Overlap(..))));
        assert_eq!(page_span(0x1234, 0x2001, Access::UserAll), Span { start: 0x1000, end: 0x3000, access: Access::UserAll });
        println!("checked that unaligned and overlapping spans are refused");
    }
}
