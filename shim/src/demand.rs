//! Demand-populated payload memory, as pure logic: which RAM the shim gives back to Xen at
//! boot (`plan`), which of it the payload may touch and so gets again on first touch
//! (`DemandMap`), in which units, and what a page fault on it does (`on_fault`). The
//! bare-metal side (hw/demand.rs) makes the hypercalls and edits the page tables; Xen's save
//! stream then carries only the pages that are populated, so a save costs what the payload
//! uses, not what the guest was configured with (../shared/SAVECOST-NOTES.md, option (a)).
use crate::layout::{PAGE_SHIFT, PAGE_SIZE};
use crate::xen::errno::XenErrno;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

/// A page-aligned byte range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn new(start: u64, end: u64) -> Range {
        Range { start, end }
    }
    pub fn pages(&self) -> u64 {
        self.end.saturating_sub(self.start) >> PAGE_SHIFT
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    fn intersect(&self, o: &Range) -> Range {
        Range { start: self.start.max(o.start), end: self.end.min(o.end) }
    }
}

fn page_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}
fn page_up(a: u64) -> u64 {
    a.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// Sorts and merges ranges (touching ones too), dropping empty ones.
fn normalise(mut v: Vec<Range>) -> Vec<Range> {
    v.retain(|r| !r.is_empty());
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// `from` less every range of `minus`, sorted and merged. Page-rounded so that nothing
/// partly in `minus` is in the result: `from` inward, `minus` outward.
pub fn subtract(from: &[Range], minus: &[Range]) -> Vec<Range> {
    let from = normalise(from.iter().map(|r| Range::new(page_up(r.start), page_down(r.end))).collect());
    let minus = normalise(minus.iter().map(|r| Range::new(page_down(r.start), page_up(r.end))).collect());
    let mut out = Vec::new();
    for f in from {
        let mut cursor = f.start;
        for m in minus.iter().filter(|m| m.end > f.start && m.start < f.end) {
            if m.start > cursor {
                out.push(Range::new(cursor, m.start));
            }
            cursor = cursor.max(m.end);
        }
        if cursor < f.end {
            out.push(Range::new(cursor, f.end));
        }
    }
    out
}

/// The parts of `a` that are also in `b`, sorted and merged.
pub fn intersect(a: &[Range], b: &[Range]) -> Vec<Range> {
    let (a, b) = (normalise(a.to_vec()), normalise(b.to_vec()));
    let mut out = Vec::new();
    for x in &a {
        for y in b.iter().filter(|y| y.end > x.start && y.start < x.end) {
            out.push(x.intersect(y));
        }
    }
    normalise(out)
}

/// Naturally aligned extents covering `r`, none larger than 2^`max_order` pages, as
/// (first page frame, order): what `XENMEM_decrease_reservation` and
/// `XENMEM_populate_physmap` take (an extent of order k must start on a 2^k-page boundary).
pub fn extents(r: Range, max_order: u32) -> impl Iterator<Item = (u64, u32)> {
    let (mut pfn, end) = (r.start >> PAGE_SHIFT, r.end >> PAGE_SHIFT);
    core::iter::from_fn(move || {
        if pfn >= end {
            return None;
        }
        let align = if pfn == 0 { max_order } else { pfn.trailing_zeros().min(max_order) };
        let fits = 63 - (end - pfn).leading_zeros();
        let order = align.min(fits);
        let e = (pfn, order);
        pfn += 1 << order;
        Some(e)
    })
}

/// What the shim does with RAM once the payload is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Given back to Xen: all RAM the shim and the loaded payload do not occupy.
    pub release: Vec<Range>,
    /// The part of `release` the payload may touch: populated again on its first touch.
    pub demand: Vec<Range>,
}

/// `ram`: the guest's RAM; `keep`: what must stay populated (the shim's image, Xen's
/// start-of-day pages, the payload's loaded segments, page tables); `payload`: what the
/// payload may touch (its window and free regions).
pub fn plan(ram: &[Range], keep: &[Range], payload: &[Range]) -> MemoryPlan {
    let release = subtract(ram, keep);
    let demand = intersect(&release, payload);
    MemoryPlan { release, demand }
}

/// One populate unit: the naturally aligned block of 2^shift bytes holding a faulting page.
/// Only its parts inside demand ranges (`DemandMap::pieces`) are populated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    pub start: u64,
    pub end: u64,
}

/// The payload's demand-populated memory and which units of it are populated. Updated only
/// with events masked (in the page-fault handler, or a payload call), by one vCPU: the
/// atomics make the book usable from a shared static without `unsafe`, not lock-free
/// concurrency. Lives in guest memory, so it is saved and restored with the guest and
/// always agrees with what Xen's stream carried.
#[derive(Debug)]
pub struct DemandMap {
    ranges: Vec<Range>,
    unit_shift: u32,
    first_unit: u64,
    bits: Vec<AtomicU64>,
    populated_pages: AtomicU64,
    faults: AtomicU64,
}

impl DemandMap {
    /// `ranges` (page-aligned) start unpopulated; `unit_shift` is log2 of the unit in bytes
    /// (at least a page).
    pub fn new(ranges: &[Range], unit_shift: u32) -> DemandMap {
        let ranges = normalise(ranges.to_vec());
        let unit_shift = unit_shift.max(PAGE_SHIFT);
        let (first_unit, units) = match (ranges.first(), ranges.last()) {
            (Some(f), Some(l)) => (f.start >> unit_shift, ((l.end - 1) >> unit_shift) - (f.start >> unit_shift) + 1),
            _ => (0, 0),
        };
        let bits = (0..units.div_ceil(64)).map(|_| AtomicU64::new(0)).collect();
        DemandMap { ranges, unit_shift, first_unit, bits, populated_pages: AtomicU64::new(0), faults: AtomicU64::new(0) }
    }

    pub fn ranges(&self) -> &[Range] {
        &self.ranges
    }
    pub fn unit_bytes(&self) -> u64 {
        1 << self.unit_shift
    }

    /// True if `addr` is demand-populated memory (populated yet or not).
    pub fn is_demand(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= addr);
        self.ranges.get(i).is_some_and(|r| r.start <= addr)
    }

    /// The unit holding `addr`, if `addr` is demand memory.
    pub fn unit_at(&self, addr: u64) -> Option<Unit> {
        self.is_demand(addr).then(|| {
            let start = addr >> self.unit_shift << self.unit_shift;
            Unit { start, end: start + self.unit_bytes() }
        })
    }

    fn bit(&self, u: Unit) -> (usize, u64) {
        let i = (u.start >> self.unit_shift) - self.first_unit;
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// True if the page at `addr` is backed: either not demand memory at all, or its unit
    /// has been populated.
    pub fn is_backed(&self, addr: u64) -> bool {
        match self.unit_at(addr) {
            None => true,
            Some(u) => {
                let (w, m) = self.bit(u);
                self.bits[w].load(Ordering::Relaxed) & m != 0
            }
        }
    }

    /// The parts of `u` that are demand memory (a unit can straddle a range's edge).
    pub fn pieces(&self, u: Unit) -> impl Iterator<Item = Range> + '_ {
        let whole = Range::new(u.start, u.end);
        self.ranges.iter().filter(move |r| r.end > u.start && r.start < u.end).map(move |r| r.intersect(&whole))
    }

    /// True if all of `u` is demand memory (then it can be populated as one extent and,
    /// under PVH, mapped by one large page).
    pub fn whole(&self, u: Unit) -> bool {
        let mut p = self.pieces(u);
        matches!((p.next(), p.next()), (Some(r), None) if r.start == u.start && r.end == u.end)
    }

    /// Records that `u` is now populated (or released again).
    pub fn set_backed(&self, u: Unit, backed: bool) {
        let (w, m) = self.bit(u);
        let was = if backed { self.bits[w].fetch_or(m, Ordering::Relaxed) } else { self.bits[w].fetch_and(!m, Ordering::Relaxed) } & m != 0;
        if was != backed {
            let pages: u64 = self.pieces(u).map(|r| r.pages()).sum();
            if backed {
                self.populated_pages.fetch_add(pages, Ordering::Relaxed);
            } else {
                self.populated_pages.fetch_sub(pages, Ordering::Relaxed);
            }
        }
    }

    /// Bytes of demand memory populated now.
    pub fn populated_bytes(&self) -> u64 {
        self.populated_pages.load(Ordering::Relaxed) << PAGE_SHIFT
    }
    /// Bytes of demand memory in all.
    pub fn demand_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }
    /// Page faults that populated a unit, since boot.
    pub fn faults(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }
}

/// Why a unit could not be populated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopulateError {
    /// Xen gave fewer pages than asked: the domain is at its `max_pages` (memory/target).
    OutOfMemory,
    /// Any other refusal (a bug: names the operation, and Xen's error if it was a hypercall).
    Refused(&'static str, Option<XenErrno>),
}

impl core::fmt::Display for PopulateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PopulateError::OutOfMemory => write!(f, "Xen gave fewer pages than asked (the domain is at its memory limit)"),
            PopulateError::Refused(op, Some(e)) => write!(f, "{op} failed: {e}"),
            PopulateError::Refused(op, None) => write!(f, "{op} failed"),
        }
    }
}

/// What populating takes: the platform's hypercalls and page-table edits.
pub trait Backing {
    /// Populates `piece` (page-aligned, inside one unit), maps it for the payload and
    /// zeroes it (Xen does not scrub pages a live domain frees: they may hold another
    /// domain's data). `whole_unit` says the piece is a whole unit, so one extent (and under
    /// PVH one large page) can back it.
    fn populate(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError>;
}

/// What a page fault on `addr` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Not demand memory, or already populated: a genuine fault, for the crash report.
    NotDemand,
    /// The unit was populated; the faulting access can be retried.
    Populated(Unit),
    /// Populating failed.
    Failed(Unit, PopulateError),
}

/// A not-present page fault on `addr`: populates its unit if it is demand memory that is
/// not yet backed.
pub fn on_fault(map: &DemandMap, addr: u64, backing: &mut impl Backing) -> FaultOutcome {
    let Some(unit) = map.unit_at(addr) else { return FaultOutcome::NotDemand };
    if map.is_backed(addr) {
        return FaultOutcome::NotDemand;
    }
    if let Err(e) = populate_unit(map, unit, backing) {
        return FaultOutcome::Failed(unit, e);
    }
    map.faults.fetch_add(1, Ordering::Relaxed);
    FaultOutcome::Populated(unit)
}

/// Populates every piece of `unit` and marks it backed.
pub fn populate_unit(map: &DemandMap, unit: Unit, backing: &mut impl Backing) -> Result<(), PopulateError> {
    let whole = map.whole(unit);
    for piece in map.pieces(unit) {
        backing.populate(piece, whole)?;
    }
    map.set_backed(unit, true);
    Ok(())
}

/// Populates every unit of `[start, end)` that is demand memory and not yet backed: what
/// the shim does before it touches payload memory itself, and the fallback when a page
/// fault reports no address.
pub fn populate_range(map: &DemandMap, start: u64, end: u64, backing: &mut impl Backing) -> Result<u64, (Unit, PopulateError)> {
    let mut done = 0;
    let mut addr = start & !(map.unit_bytes() - 1);
    while addr < end {
        // Skip quickly over what is not demand memory.
        let i = map.ranges.partition_point(|r| r.end <= addr);
        let Some(r) = map.ranges.get(i) else { break };
        if r.start >= end {
            break;
        }
        let a = addr.max(r.start);
        if let Some(u) = map.unit_at(a) {
            if !map.is_backed(a) {
                populate_unit(map, u, backing).map_err(|e| (u, e))?;
                done += 1;
            }
            addr = u.end;
        } else {
            addr = a + PAGE_SIZE;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    const MIB: u64 = 1 << 20;

    fn r(s: u64, e: u64) -> Range {
        Range::new(s, e)
    }

    #[test]
    fn subtract_and_intersect_round_to_pages() {
        let ram = [r(0, 128 * MIB)];
        let keep = [r(MIB, 3 * MIB + 5), r(8 * MIB + 0x800, 8 * MIB + 0x1800), r(120 * MIB, 130 * MIB)];
        let left = subtract(&ram, &keep);
        assert_eq!(left, vec![r(0, MIB), r(3 * MIB + 0x1000, 8 * MIB), r(8 * MIB + 0x2000, 120 * MIB)]);
        assert_eq!(subtract(&[r(0x800, 0x3800)], &[]), vec![r(0x1000, 0x3000)], "RAM is rounded inward");
        assert_eq!(subtract(&ram, &ram), vec![]);
        let payload = [r(8 * MIB, 16 * MIB), r(16 * MIB, 127 * MIB)];
        assert_eq!(intersect(&left, &payload), vec![r(8 * MIB + 0x2000, 120 * MIB)], "touching ranges merge");
        println!("checked subtract/intersect: rounding, merging, whole removal");
    }

    #[test]
    fn extents_are_aligned_and_cover_exactly() {
        for (start, end, max) in [(0, 4 * MIB, 9), (0x3000, 0x40_5000, 9), (0x1000, 0x2000, 9), (2 * MIB - 0x1000, 6 * MIB + 0x3000, 4)] {
            let mut next = start >> 12;
            let mut count = 0;
            for (pfn, order) in extents(r(start, end), max) {
                assert_eq!(pfn, next, "contiguous");
                assert!(order <= max);
                assert_eq!(pfn % (1 << order), 0, "naturally aligned");
                next = pfn + (1 << order);
                count += 1;
            }
            assert_eq!(next, end >> 12, "ends exactly");
            if (start, end) == (0, 4 * MIB) {
                assert_eq!(count, 2, "two 2 MiB extents");
            }
        }
        assert_eq!(extents(r(5, 5), 9).count(), 0);
        println!("checked extents: natural alignment, maximum order, exact cover");
    }

    #[test]
    fn plan_releases_all_but_keep_and_demands_the_payloads_part() {
        let p = plan(&[r(0, 64 * MIB)], &[r(MIB, 3 * MIB), r(8 * MIB, 9 * MIB)], &[r(8 * MIB, 16 * MIB), r(16 * MIB, 64 * MIB)]);
        assert_eq!(p.release, vec![r(0, MIB), r(3 * MIB, 8 * MIB), r(9 * MIB, 64 * MIB)]);
        assert_eq!(p.demand, vec![r(9 * MIB, 64 * MIB)]);
        println!("checked the boot plan: released = RAM - kept, demand = released ∩ payload");
    }

    struct Fake {
        populated: Vec<(Range, bool)>,
        limit_pages: u64,
    }
    impl Backing for Fake {
        fn populate(&mut self, piece: Range, whole: bool) -> Result<(), PopulateError> {
            let used: u64 = self.populated.iter().map(|(r, _)| r.pages()).sum();
            if used + piece.pages() > self.limit_pages {
                return Err(PopulateError::OutOfMemory);
            }
            self.populated.push((piece, whole));
            Ok(())
        }
    }

    #[test]
    fn faults_populate_a_unit_once() {
        // Demand memory from 9 MiB + 12 KiB (not unit-aligned) to 20 MiB, 2 MiB units.
        let m = DemandMap::new(&[r(9 * MIB + 0x3000, 20 * MIB)], 21);
        let mut b = Fake { populated: vec![], limit_pages: u64::MAX };
        assert_eq!(on_fault(&m, 4 * MIB, &mut b), FaultOutcome::NotDemand, "not demand memory");
        assert!(m.is_backed(4 * MIB), "memory that is not demand counts as backed");
        assert!(!m.is_backed(9 * MIB + 0x3000));
        let f = on_fault(&m, 9 * MIB + 0x5123, &mut b);
        assert_eq!(f, FaultOutcome::Populated(Unit { start: 8 * MIB, end: 10 * MIB }));
        assert_eq!(b.populated, vec![(r(9 * MIB + 0x3000, 10 * MIB), false)], "only the demand part of the edge unit");
        assert_eq!(on_fault(&m, 9 * MIB + 0x3000, &mut b), FaultOutcome::NotDemand, "a second fault on a backed unit is genuine");
        on_fault(&m, 12 * MIB + 5, &mut b);
        assert_eq!(b.populated[1], (r(12 * MIB, 14 * MIB), true), "a whole unit");
        assert_eq!(m.populated_bytes(), MIB - 0x3000 + 2 * MIB);
        assert_eq!(m.faults(), 2);
        m.set_backed(Unit { start: 12 * MIB, end: 14 * MIB }, false);
        assert_eq!(m.populated_bytes(), MIB - 0x3000);
        assert!(!m.is_backed(12 * MIB));
        println!("checked faults: edge units, whole units, already backed, release again");
    }

    #[test]
    fn out_of_memory_is_reported_and_nothing_is_marked() {
        let m = DemandMap::new(&[r(16 * MIB, 32 * MIB)], 16);
        let mut b = Fake { populated: vec![], limit_pages: 20 };
        assert!(matches!(on_fault(&m, 16 * MIB, &mut b), FaultOutcome::Populated(_)));
        let f = on_fault(&m, 17 * MIB, &mut b);
        assert_eq!(f, FaultOutcome::Failed(Unit { start: 17 * MIB, end: 17 * MIB + 0x1_0000 }, PopulateError::OutOfMemory));
        assert!(!m.is_backed(17 * MIB));
        assert_eq!(m.populated_bytes(), 0x1_0000);
        println!("checked out of memory: reported with its unit, not marked backed");
    }

    #[test]
    fn populate_range_backs_exactly_the_units_touched() {
        let m = DemandMap::new(&[r(16 * MIB, 18 * MIB), r(20 * MIB, 24 * MIB)], 20);
        let mut b = Fake { populated: vec![], limit_pages: u64::MAX };
        assert_eq!(populate_range(&m, 17 * MIB + 5, 21 * MIB + 1, &mut b), Ok(3));
        assert_eq!(b.populated.iter().map(|(r, _)| r.start).collect::<Vec<_>>(), vec![17 * MIB, 20 * MIB, 21 * MIB]);
        assert_eq!(populate_range(&m, 17 * MIB, 21 * MIB + 1, &mut b), Ok(0), "already backed");
        assert_eq!(populate_range(&m, 0, 64 * MIB, &mut b), Ok(3));
        assert_eq!(m.populated_bytes(), m.demand_bytes());
        println!("checked populate_range: only units touched, skipping holes and backed units");
    }
}
