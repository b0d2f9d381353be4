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

/// Where a unit of demand memory stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// Mapped for the payload, backed by a populated frame.
    Backed,
    /// Still backed by the frames the domain builder populated, but unmapped and never the
    /// payload's: given back to Xen from the idle path (`release_held`), or mapped and
    /// zeroed on first touch if the payload gets there first.
    Held,
    /// Given back to Xen: populated again on first touch.
    Released,
}

/// The payload's demand-populated memory and where each unit of it stands. Updated only
/// with events masked (in the page-fault handler, or a payload call), by one vCPU: the
/// atomics make the book usable from a shared static without `unsafe`, not lock-free
/// concurrency. Lives in guest memory, so it is saved and restored with the guest and
/// always agrees with what Xen's stream carried.
#[derive(Debug)]
pub struct DemandMap {
    ranges: Vec<Range>,
    unit_shift: u32,
    first_unit: u64,
    units: u64,
    backed: Vec<AtomicU64>,
    held: Vec<AtomicU64>,
    /// Units given back since the guest last woke in a new domain. A live migration's
    /// receiver keeps pages that were sent before the sender gave them back (an XTAB record
    /// frees nothing there), so after a migration these are given back again.
    released_this_epoch: Vec<AtomicU64>,
    /// Units of earlier epochs still to give back again (`start_epoch`): from the idle path,
    /// or before the unit is populated on a touch, whichever comes first.
    release_again: Vec<AtomicU64>,
    populated_pages: AtomicU64,
    held_pages: AtomicU64,
    faults: AtomicU64,
    release_cursor: AtomicU64,
}

impl DemandMap {
    /// `ranges` (page-aligned) start unmapped, in `initial` state (`Held`: still populated,
    /// to be given back later; `Released`: given back already); `unit_shift` is log2 of the
    /// unit in bytes (at least a page).
    pub fn new(ranges: &[Range], unit_shift: u32, initial: UnitState) -> DemandMap {
        let ranges = normalise(ranges.to_vec());
        let unit_shift = unit_shift.max(PAGE_SHIFT);
        let (first_unit, units) = match (ranges.first(), ranges.last()) {
            (Some(f), Some(l)) => (f.start >> unit_shift, ((l.end - 1) >> unit_shift) - (f.start >> unit_shift) + 1),
            _ => (0, 0),
        };
        let words = || (0..units.div_ceil(64)).map(|_| AtomicU64::new(0)).collect::<Vec<_>>();
        let map = DemandMap {
            ranges,
            unit_shift,
            first_unit,
            units,
            backed: words(),
            held: words(),
            released_this_epoch: words(),
            release_again: words(),
            populated_pages: AtomicU64::new(0),
            held_pages: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            release_cursor: AtomicU64::new(0),
        };
        if initial != UnitState::Released {
            for i in 0..units {
                let u = map.unit(i);
                if map.pieces(u).next().is_some() {
                    map.set_state(u, initial);
                }
            }
        }
        map
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
        self.is_demand(addr).then(|| self.unit((addr >> self.unit_shift) - self.first_unit))
    }

    fn unit(&self, index: u64) -> Unit {
        let start = (self.first_unit + index) << self.unit_shift;
        Unit { start, end: start + self.unit_bytes() }
    }

    fn bit(&self, u: Unit) -> (usize, u64) {
        let i = (u.start >> self.unit_shift) - self.first_unit;
        ((i / 64) as usize, 1 << (i % 64))
    }

    /// Where unit `u` stands.
    pub fn state(&self, u: Unit) -> UnitState {
        let (w, m) = self.bit(u);
        if self.backed[w].load(Ordering::Relaxed) & m != 0 {
            UnitState::Backed
        } else if self.held[w].load(Ordering::Relaxed) & m != 0 {
            UnitState::Held
        } else {
            UnitState::Released
        }
    }

    fn set_state(&self, u: Unit, new: UnitState) {
        let old = self.state(u);
        if old == new {
            return;
        }
        let (w, m) = self.bit(u);
        let pages: u64 = self.pieces(u).map(|r| r.pages()).sum();
        let flip = |v: &Vec<AtomicU64>, on: bool| if on { v[w].fetch_or(m, Ordering::Relaxed) } else { v[w].fetch_and(!m, Ordering::Relaxed) };
        flip(&self.backed, new == UnitState::Backed);
        flip(&self.held, new == UnitState::Held);
        for (state, counter) in [(UnitState::Backed, &self.populated_pages), (UnitState::Held, &self.held_pages)] {
            if old == state {
                counter.fetch_sub(pages, Ordering::Relaxed);
            }
            if new == state {
                counter.fetch_add(pages, Ordering::Relaxed);
            }
        }
        if new == UnitState::Released {
            self.released_this_epoch[w].fetch_or(m, Ordering::Relaxed);
        }
    }

    /// True if the page at `addr` is mapped: either not demand memory at all, or its unit
    /// is backed.
    pub fn is_backed(&self, addr: u64) -> bool {
        self.unit_at(addr).is_none_or(|u| self.state(u) == UnitState::Backed)
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

    /// Bytes of demand memory mapped for the payload now.
    pub fn populated_bytes(&self) -> u64 {
        self.populated_pages.load(Ordering::Relaxed) << PAGE_SHIFT
    }
    /// Bytes of demand memory still held from the domain builder, not yet given back.
    pub fn held_bytes(&self) -> u64 {
        self.held_pages.load(Ordering::Relaxed) << PAGE_SHIFT
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

/// Why a unit could not be populated or given back.
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

/// What the book-keeping asks of the platform: its hypercalls and page-table edits. Every
/// `piece` is page-aligned and inside one unit; `whole_unit` says it is a whole unit (one
/// extent, and under PVH one large page).
pub trait Backing {
    /// Populates the piece, maps it for the payload and zeroes it (Xen does not scrub pages
    /// a live domain frees: they may hold another domain's data).
    fn populate(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError>;
    /// Maps a held piece (its frames are still there) for the payload and zeroes it.
    fn map_held(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError>;
    /// Gives the frames behind the piece back to Xen. `mapped`: the payload has it mapped
    /// (and may have left data in it): zero it, unmap it, then give it back.
    fn release(&mut self, piece: Range, whole_unit: bool, mapped: bool) -> Result<(), PopulateError>;
    /// In a new domain: gives back whatever frames back the piece now, if any (errors are
    /// not failures: most such pieces have none).
    fn release_again(&mut self, piece: Range, whole_unit: bool);
    /// Zeroes part of mapped payload memory.
    fn zero(&mut self, r: Range);
    /// Whether `pages` more may go back to Xen now (a platform may need to keep a floor).
    fn may_give_back(&mut self, _pages: u64) -> bool {
        true
    }
}

/// What a page fault on `addr` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Not demand memory: a genuine fault, for the crash report.
    NotDemand,
    /// Demand memory already backed: genuine with one vCPU; with several, another vCPU may
    /// have backed it between this fault and its handler taking the shim lock.
    AlreadyBacked(Unit),
    /// The unit was backed; the faulting access can be retried.
    Populated(Unit),
    /// Populating failed.
    Failed(Unit, PopulateError),
}

/// A not-present page fault on `addr`: backs its unit if it is demand memory that is not
/// backed yet.
pub fn on_fault(map: &DemandMap, addr: u64, backing: &mut impl Backing) -> FaultOutcome {
    let Some(unit) = map.unit_at(addr) else { return FaultOutcome::NotDemand };
    if map.state(unit) == UnitState::Backed {
        return FaultOutcome::AlreadyBacked(unit);
    }
    if let Err(e) = back_unit(map, unit, backing) {
        return FaultOutcome::Failed(unit, e);
    }
    map.faults.fetch_add(1, Ordering::Relaxed);
    FaultOutcome::Populated(unit)
}

/// Backs every piece of `unit` (populating it, or mapping what is held) and marks it.
pub fn back_unit(map: &DemandMap, unit: Unit, backing: &mut impl Backing) -> Result<(), PopulateError> {
    let whole = map.whole(unit);
    // A unit a live migration's receiver may still hold: given back again first, so that
    // populating it does not leave those frames behind.
    let (w, m) = map.bit(unit);
    if map.release_again[w].fetch_and(!m, Ordering::Relaxed) & m != 0 && map.state(unit) == UnitState::Released {
        for piece in map.pieces(unit) {
            backing.release_again(piece, whole);
        }
    }
    let held = map.state(unit) == UnitState::Held;
    for piece in map.pieces(unit) {
        if held {
            backing.map_held(piece, whole)?;
        } else {
            backing.populate(piece, whole)?;
        }
    }
    map.set_state(unit, UnitState::Backed);
    Ok(())
}

/// True if `[start, end)` touches demand memory that is backed.
pub fn touches_backed(map: &DemandMap, start: u64, end: u64) -> bool {
    let mut addr = start & !(map.unit_bytes() - 1);
    while addr < end {
        match map.unit_at(addr) {
            Some(u) if map.state(u) == UnitState::Backed => return true,
            Some(u) => addr = u.end,
            None => addr += PAGE_SIZE,
        }
    }
    false
}

/// Backs every unit of `[start, end)` that is demand memory and not backed yet: what the
/// shim does when a page fault reports no address. Returns how many units it backed.
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
            if map.state(u) != UnitState::Backed {
                back_unit(map, u, backing).map_err(|e| (u, e))?;
                done += 1;
            }
            addr = u.end;
        } else {
            addr = a + PAGE_SIZE;
        }
    }
    Ok(done)
}

/// The idle path: gives up to `max_units` held units back to Xen, as far as the platform
/// allows (`may_give_back`). Held units that follow each other go back together, as one
/// range (PV: 64 pages a batch of hypercalls instead of one unit's 16; 65,000 units of a
/// 4 GiB guest took 7 s one at a time). Returns the pages given back.
pub fn release_held(map: &DemandMap, max_units: u64, backing: &mut impl Backing) -> Result<u64, (Unit, PopulateError)> {
    let mut pages = 0;
    let mut done = 0;
    let mut scanned = 0;
    while done < max_units && scanned < map.units && map.held_pages.load(Ordering::Relaxed) > 0 {
        let first = map.release_cursor.load(Ordering::Relaxed) % map.units.max(1);
        map.release_cursor.store(first + 1, Ordering::Relaxed);
        scanned += 1;
        if map.state(map.unit(first)) != UnitState::Held {
            continue;
        }
        // The run: this unit and the held ones right after it.
        let mut last = first;
        while done + (last - first + 1) < max_units && last + 1 < map.units && map.state(map.unit(last + 1)) == UnitState::Held {
            last += 1;
        }
        let run_pages = |last: u64| (first..=last).flat_map(|i| map.pieces(map.unit(i))).map(|p| p.pages()).sum::<u64>();
        if !backing.may_give_back(run_pages(last)) {
            // Near the platform's floor: one unit, or none.
            last = first;
            if !backing.may_give_back(run_pages(first)) {
                break;
            }
        }
        let whole = (first..=last).all(|i| map.whole(map.unit(i)));
        let pieces = normalise((first..=last).flat_map(|i| map.pieces(map.unit(i))).collect());
        for piece in pieces {
            backing.release(piece, whole, false).map_err(|e| (map.unit(first), e))?;
            pages += piece.pages();
        }
        for i in first..=last {
            map.set_state(map.unit(i), UnitState::Released);
        }
        map.release_cursor.store(last + 1, Ordering::Relaxed);
        done += last - first + 1;
        scanned += last - first;
    }
    Ok(pages)
}

/// MEM_DISCARD: `[start, end)` (page-aligned) reads as zeros from now on. Units wholly
/// inside it go back to Xen (zeroed first if the payload had them); the rest of it is
/// zeroed in place. Returns the bytes given back.
pub fn discard(map: &DemandMap, start: u64, end: u64, backing: &mut impl Backing) -> Result<u64, (Unit, PopulateError)> {
    let whole_range = Range::new(start, end);
    // What is not demand memory (the payload's loaded segments, its stack) is zeroed.
    for r in subtract(&[whole_range], &map.ranges) {
        backing.zero(r);
    }
    let mut bytes = 0;
    let mut addr = start & !(map.unit_bytes() - 1);
    while addr < end {
        let u = Unit { start: addr, end: addr + map.unit_bytes() };
        addr = u.end;
        if map.pieces(u).next().is_none() {
            continue;
        }
        let covered = map.pieces(u).all(|p| p.start >= start && p.end <= end);
        let state = map.state(u);
        let pages: u64 = map.pieces(u).map(|p| p.pages()).sum();
        if covered && state != UnitState::Released && !backing.may_give_back(pages) {
            // Kept (the platform's floor): the payload's data is zeroed in place; held memory
            // already reads as zeros when it is first mapped.
            if state == UnitState::Backed {
                for piece in map.pieces(u) {
                    backing.zero(piece);
                }
            }
        } else if covered {
            if state != UnitState::Released {
                let whole = map.whole(u);
                for piece in map.pieces(u) {
                    backing.release(piece, whole, state == UnitState::Backed).map_err(|e| (u, e))?;
                    bytes += piece.end - piece.start;
                }
                map.set_state(u, UnitState::Released);
            }
        } else if state == UnitState::Backed {
            for piece in map.pieces(u) {
                let part = piece.intersect(&whole_range);
                if !part.is_empty() {
                    backing.zero(part);
                }
            }
        }
    }
    Ok(bytes)
}

/// In a new domain: the units released since the last new domain may have been given frames
/// again by a live migration's receiver (it keeps pages sent before they were given back).
/// Marks them to give back again (`release_again_some`, or before a touch populates one) and
/// starts a new epoch; touches nothing, so the resume does not wait for it. Returns how
/// many units are marked.
pub fn start_epoch(map: &DemandMap) -> u64 {
    let mut units = 0;
    for (word, again) in map.released_this_epoch.iter().zip(&map.release_again) {
        let bits = word.swap(0, Ordering::Relaxed);
        units += u64::from((again.fetch_or(bits, Ordering::Relaxed) | bits).count_ones());
    }
    units
}

/// The idle path: gives back again up to `max_units` of the units `start_epoch` marked (those
/// still given back; consecutive ones together). Returns the units done; 0 when none is left.
pub fn release_again_some(map: &DemandMap, max_units: u64, backing: &mut impl Backing) -> u64 {
    let mut done = 0;
    for (w, word) in map.release_again.iter().enumerate() {
        if done >= max_units {
            break;
        }
        let bits = word.swap(0, Ordering::Relaxed);
        if bits == 0 {
            continue;
        }
        let released: Vec<Range> = (0..64u64)
            .filter(|b| bits & (1 << b) != 0)
            .map(|b| map.unit(w as u64 * 64 + b))
            .filter(|&u| map.state(u) == UnitState::Released)
            .flat_map(|u| map.pieces(u))
            .collect();
        for piece in normalise(released) {
            backing.release_again(piece, false);
        }
        done += u64::from(bits.count_ones());
    }
    done
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

    #[derive(Default)]
    struct Fake {
        populated: Vec<(Range, bool)>,
        mapped_held: Vec<Range>,
        released: Vec<(Range, bool)>,
        again: Vec<Range>,
        zeroed: Vec<Range>,
        limit_pages: u64,
        /// Pages that may still go back (the platform's floor); None: no floor.
        give_back_budget: Option<u64>,
    }
    impl Fake {
        fn new() -> Fake {
            Fake { limit_pages: u64::MAX, ..Default::default() }
        }
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
        fn map_held(&mut self, piece: Range, _whole: bool) -> Result<(), PopulateError> {
            self.mapped_held.push(piece);
            Ok(())
        }
        fn release(&mut self, piece: Range, _whole: bool, mapped: bool) -> Result<(), PopulateError> {
            self.released.push((piece, mapped));
            Ok(())
        }
        fn release_again(&mut self, piece: Range, _whole: bool) {
            self.again.push(piece);
        }
        fn zero(&mut self, r: Range) {
            self.zeroed.push(r);
        }
        fn may_give_back(&mut self, pages: u64) -> bool {
            match &mut self.give_back_budget {
                None => true,
                Some(b) if *b >= pages => {
                    *b -= pages;
                    true
                }
                Some(_) => false,
            }
        }
    }

    #[test]
    fn faults_populate_a_unit_once() {
        // Demand memory from 9 MiB + 12 KiB (not unit-aligned) to 20 MiB, 2 MiB units.
        let m = DemandMap::new(&[r(9 * MIB + 0x3000, 20 * MIB)], 21, UnitState::Released);
        let mut b = Fake::new();
        assert_eq!(on_fault(&m, 4 * MIB, &mut b), FaultOutcome::NotDemand, "not demand memory");
        assert!(m.is_backed(4 * MIB), "memory that is not demand counts as backed");
        assert!(!m.is_backed(9 * MIB + 0x3000));
        let f = on_fault(&m, 9 * MIB + 0x5123, &mut b);
        assert_eq!(f, FaultOutcome::Populated(Unit { start: 8 * MIB, end: 10 * MIB }));
        assert_eq!(b.populated, vec![(r(9 * MIB + 0x3000, 10 * MIB), false)], "only the demand part of the edge unit");
        assert_eq!(on_fault(&m, 9 * MIB + 0x3000, &mut b), FaultOutcome::AlreadyBacked(Unit { start: 8 * MIB, end: 10 * MIB }), "a second fault on a backed unit: said so, nothing populated again");
        assert_eq!(b.populated.len(), 1);
        assert!(touches_backed(&m, 9 * MIB + 0x4000, 9 * MIB + 0x4008) && !touches_backed(&m, 12 * MIB, 12 * MIB + 8) && !touches_backed(&m, 4 * MIB, 4 * MIB + 8));
        on_fault(&m, 12 * MIB + 5, &mut b);
        assert_eq!(b.populated[1], (r(12 * MIB, 14 * MIB), true), "a whole unit");
        assert_eq!(m.populated_bytes(), MIB - 0x3000 + 2 * MIB);
        assert_eq!(m.faults(), 2);
        assert_eq!(discard(&m, 12 * MIB, 14 * MIB, &mut b), Ok(2 * MIB));
        assert_eq!(m.populated_bytes(), MIB - 0x3000);
        assert!(!m.is_backed(12 * MIB));
        println!("checked faults: edge units, whole units, already backed, release again");
    }

    #[test]
    fn out_of_memory_is_reported_and_nothing_is_marked() {
        let m = DemandMap::new(&[r(16 * MIB, 32 * MIB)], 16, UnitState::Released);
        let mut b = Fake { limit_pages: 20, ..Fake::new() };
        assert!(matches!(on_fault(&m, 16 * MIB, &mut b), FaultOutcome::Populated(_)));
        let f = on_fault(&m, 17 * MIB, &mut b);
        assert_eq!(f, FaultOutcome::Failed(Unit { start: 17 * MIB, end: 17 * MIB + 0x1_0000 }, PopulateError::OutOfMemory));
        assert!(!m.is_backed(17 * MIB));
        assert_eq!(m.populated_bytes(), 0x1_0000);
        println!("checked out of memory: reported with its unit, not marked backed");
    }

    #[test]
    fn populate_range_backs_exactly_the_units_touched() {
        let m = DemandMap::new(&[r(16 * MIB, 18 * MIB), r(20 * MIB, 24 * MIB)], 20, UnitState::Released);
        let mut b = Fake::new();
        assert_eq!(populate_range(&m, 17 * MIB + 5, 21 * MIB + 1, &mut b), Ok(3));
        assert_eq!(b.populated.iter().map(|(r, _)| r.start).collect::<Vec<_>>(), vec![17 * MIB, 20 * MIB, 21 * MIB]);
        assert_eq!(populate_range(&m, 17 * MIB, 21 * MIB + 1, &mut b), Ok(0), "already backed");
        assert_eq!(populate_range(&m, 0, 64 * MIB, &mut b), Ok(3));
        assert_eq!(m.populated_bytes(), m.demand_bytes());
        println!("checked populate_range: only units touched, skipping holes and backed units");
    }

    #[test]
    fn held_units_are_mapped_on_touch_or_given_back_when_idle() {
        let m = DemandMap::new(&[r(16 * MIB, 24 * MIB)], 21, UnitState::Held);
        let mut b = Fake::new();
        assert_eq!(m.held_bytes(), 8 * MIB);
        assert_eq!(m.state(m.unit_at(16 * MIB).unwrap()), UnitState::Held);
        // The payload gets to the first unit before the idle path does: mapped, not populated.
        assert!(matches!(on_fault(&m, 16 * MIB + 8, &mut b), FaultOutcome::Populated(_)));
        assert_eq!(b.mapped_held, vec![r(16 * MIB, 18 * MIB)]);
        assert!(b.populated.is_empty());
        // The idle path gives the others back, two units per call, then has nothing to do.
        assert_eq!(release_held(&m, 2, &mut b), Ok(1024));
        assert_eq!(b.released, vec![(r(18 * MIB, 22 * MIB), false)], "units that follow each other go back as one range");
        assert_eq!(release_held(&m, 2, &mut b), Ok(512));
        assert_eq!(release_held(&m, 2, &mut b), Ok(0));
        assert_eq!(m.held_bytes(), 0);
        assert!(b.released.iter().all(|&(_, mapped)| !mapped), "held units were never mapped");
        // A released unit is populated on touch.
        on_fault(&m, 20 * MIB, &mut b);
        assert_eq!(b.populated, vec![(r(20 * MIB, 22 * MIB), true)]);
        assert_eq!(m.populated_bytes(), 4 * MIB);
        println!("checked held units: mapped on first touch, given back from the idle path");
    }

    #[test]
    fn discard_gives_back_whole_units_and_zeroes_the_rest() {
        let m = DemandMap::new(&[r(16 * MIB, 20 * MIB)], 20, UnitState::Released);
        let mut b = Fake::new();
        populate_range(&m, 16 * MIB, 20 * MIB, &mut b).unwrap();
        // From the middle of unit 16 to the middle of unit 19: units 17 and 18 go back.
        let (s, e) = (16 * MIB + 0x8000, 19 * MIB + 0x4000);
        assert_eq!(discard(&m, s, e, &mut b), Ok(2 * MIB));
        assert_eq!(b.released, vec![(r(17 * MIB, 18 * MIB), true), (r(18 * MIB, 19 * MIB), true)]);
        assert_eq!(b.zeroed, vec![r(s, 17 * MIB), r(19 * MIB, e)]);
        assert_eq!(m.populated_bytes(), 2 * MIB);
        // Discarding what is already given back does nothing; memory outside is zeroed.
        b.zeroed.clear();
        assert_eq!(discard(&m, 15 * MIB, 18 * MIB, &mut b), Ok(MIB), "unit 16 goes back too; 17 already had");
        assert_eq!(b.zeroed, vec![r(15 * MIB, 16 * MIB)], "not demand memory: zeroed in place");
        println!("checked discard: whole units given back, partial units and other memory zeroed");
    }

    #[test]
    fn a_new_domain_gives_back_again_what_was_released_in_the_epoch() {
        let m = DemandMap::new(&[r(16 * MIB, 24 * MIB)], 21, UnitState::Held);
        let mut b = Fake::new();
        release_held(&m, 1, &mut b).unwrap();
        on_fault(&m, 18 * MIB, &mut b);
        populate_range(&m, 20 * MIB, 22 * MIB, &mut b).unwrap();
        discard(&m, 20 * MIB, 22 * MIB, &mut b).unwrap();
        assert_eq!(start_epoch(&m), 2);
        assert!(b.again.is_empty(), "nothing on the resume path");
        assert_eq!(release_again_some(&m, 64, &mut b), 2);
        assert_eq!(b.again, vec![r(16 * MIB, 18 * MIB), r(20 * MIB, 22 * MIB)], "released this epoch, not the backed one");
        assert_eq!(release_again_some(&m, 64, &mut b), 0, "once");
        assert_eq!(start_epoch(&m), 0, "a new epoch starts empty");
        // Marked, then touched before the idle path got to it: given back again, then
        // populated; the idle path then has nothing left.
        discard(&m, 18 * MIB, 20 * MIB, &mut b).unwrap();
        release_held(&m, 8, &mut b).unwrap();
        assert_eq!(start_epoch(&m), 2, "18..20 discarded, 22..24 given back from held");
        b.again.clear();
        on_fault(&m, 18 * MIB, &mut b);
        assert_eq!(b.again, vec![r(18 * MIB, 20 * MIB)]);
        assert_eq!(b.populated.last(), Some(&(r(18 * MIB, 20 * MIB), true)));
        assert_eq!(release_again_some(&m, 64, &mut b), 1, "the touch took its mark");
        assert_eq!(b.again[1..], [r(22 * MIB, 24 * MIB)], "the populated one is not given back");
        println!("checked the epoch: units released since the last new domain are given back again once, before a touch populates one");
    }

    #[test]
    fn a_floor_keeps_memory_populated_and_discard_still_zeroes() {
        let m = DemandMap::new(&[r(16 * MIB, 24 * MIB)], 21, UnitState::Held);
        let mut b = Fake { give_back_budget: Some(1024), ..Fake::new() };
        assert_eq!(release_held(&m, 10, &mut b), Ok(1024), "two units, then the floor");
        assert_eq!(m.held_bytes(), 4 * MIB);
        populate_range(&m, 16 * MIB, 24 * MIB, &mut b).unwrap();
        assert_eq!(discard(&m, 16 * MIB, 24 * MIB, &mut b), Ok(0), "nothing may go back");
        assert_eq!(b.zeroed.len(), 4, "every backed unit zeroed in place");
        assert!(m.is_backed(16 * MIB), "and still backed");
        println!("checked the floor: the idle path stops at it, discard zeroes in place");
    }
}
