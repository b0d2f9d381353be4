//! Demand-populated payload memory under Xen (PV and PVH): at boot every page that neither
//! the shim nor the loaded payload occupies goes back to Xen, and the payload's memory is
//! populated again on its first touch, from the page-fault path. Xen's save stream then
//! carries only populated pages. Without Xen (QEMU) nothing changes. The logic is
//! `xshim_shim::demand`; this is its bare-metal side. Errors go up to the kernel.
use super::Platform;
use crate::hw::xen::hypercall::XenHypercalls;
use crate::hw::{paging, xen::pv_mm};
use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use xshim_shim::demand::{self, Backing, DemandMap, FaultOutcome, MemoryPlan, PopulateError, Range, UnitState};
use xshim_shim::layout::PAGE_SHIFT;
use xshim_shim::xen::abi::memory::DOMU_MAX_EXTENT_ORDER;

static DEMAND: spin::Once<DemandMap> = spin::Once::new();
/// `xshim.demand=0` keeps all memory populated (as before demand population existed).
static ENABLED: AtomicBool = AtomicBool::new(true);
/// PV: log2 of the populate unit in bytes (`xshim.populate_unit=<KiB>`). PVH always uses
/// 2 MiB: one large page in the shim's tables and one extent for Xen.
static PV_UNIT_SHIFT: AtomicU32 = AtomicU32::new(16);
/// `xshim.release=boot`: give the payload's memory back before it starts instead of from
/// the idle path (the boot-time cost, for comparison).
static RELEASE_AT_BOOT: AtomicBool = AtomicBool::new(false);
/// Giving held memory back failed once, or reached the floor (logged): the rest stays held,
/// mapped on first touch.
static GIVING_BACK_STOPPED: AtomicBool = AtomicBool::new(false);
/// PV or PVH backing, fixed by `release_at_boot` (the demand map exists only under Xen).
static IS_PV: AtomicBool = AtomicBool::new(false);
const PVH_UNIT_SHIFT: u32 = 21;

/// Reads `xshim.demand=` and `xshim.populate_unit=` from the shim's options.
pub fn set_options(opts: &[&str]) {
    for o in opts {
        if let Some(v) = o.strip_prefix("xshim.demand=") {
            match v {
                "0" => ENABLED.store(false, Ordering::Relaxed),
                "1" => ENABLED.store(true, Ordering::Relaxed),
                other => log::warn!("xshim.demand={other} ignored (0 or 1)"),
            }
        } else if let Some(v) = o.strip_prefix("xshim.release=") {
            match v {
                "boot" => RELEASE_AT_BOOT.store(true, Ordering::Relaxed),
                "idle" => RELEASE_AT_BOOT.store(false, Ordering::Relaxed),
                other => log::warn!("xshim.release={other} ignored (boot or idle)"),
            }
        } else if let Some(v) = o.strip_prefix("xshim.populate_unit=") {
            match v.parse::<u64>() {
                Ok(kib) if kib.is_power_of_two() && (4..=2048).contains(&kib) => PV_UNIT_SHIFT.store(kib.trailing_zeros() + 10, Ordering::Relaxed),
                _ => log::warn!("xshim.populate_unit={v} ignored (KiB: a power of two from 4 to 2048)"),
            }
        }
    }
}

/// True if the shim gives unused memory back on this platform (Xen, not turned off).
pub fn enabled(p: Platform) -> bool {
    p != Platform::Native && ENABLED.load(Ordering::Relaxed)
}

/// The demand map, once `release_at_boot` made it.
pub fn demand() -> Option<&'static DemandMap> {
    DEMAND.get()
}

/// The toolstack's `memory/target` for the guest, in KiB (0 until read).
static TARGET_KIB: AtomicU64 = AtomicU64::new(0);

/// The last `memory/target` read, in KiB (0: not read yet).
pub fn target_kib() -> u64 {
    TARGET_KIB.load(Ordering::Relaxed)
}

/// Records `memory/target` (read at boot and whenever its watch fires).
pub fn set_target_kib(kib: u64) {
    TARGET_KIB.store(kib, Ordering::Relaxed);
}

/// What the guest may hold, for the out-of-memory report: `memory/target` if known, else
/// Xen's ceiling (max_pages, which `xl mem-set` lowers with the target).
pub fn limit_bytes() -> u64 {
    match TARGET_KIB.load(Ordering::Relaxed) {
        0 => XenHypercalls.reservation_pages(true).map_or(0, |p| p << PAGE_SHIFT),
        kib => kib << 10,
    }
}

/// What the boot release did, for the log.
pub struct Released {
    /// Pages given back before the payload starts.
    pub pages: u64,
    /// Pages Xen holds for the domain afterwards, and at most may (max_pages).
    pub xen_pages: Option<(u64, u64)>,
    pub demand_bytes: u64,
    /// Payload memory still held, given back from the idle path.
    pub held_bytes: u64,
    pub unit_bytes: u64,
    pub micros: u64,
}

/// Records the demand map and gives back what the payload will never touch (memory
/// outside it: the low 1 MiB, the embedded payload's copy, gaps). The payload's own memory
/// is unmapped (PVH: `paging::install` leaves it out; PV: its mappings cleared here) and
/// given back from the idle path (`give_back_some`), or here with `xshim.release=boot`.
/// Before the payload's page tables are built (PV: the user table copies only what is
/// mapped).
pub fn release_at_boot(p: Platform, plan: &MemoryPlan) -> Result<Released, String> {
    let t0 = crate::clock::now_ns();
    let shift = if p == Platform::Pv { PV_UNIT_SHIFT.load(Ordering::Relaxed) } else { PVH_UNIT_SHIFT };
    IS_PV.store(p == Platform::Pv, Ordering::Relaxed);
    let map = DEMAND.call_once(|| DemandMap::new(&plan.demand, shift, UnitState::Held));
    let mut pages = 0;
    for r in demand::subtract(&plan.release, &plan.demand) {
        pages += release_now(p, r)?;
    }
    if p == Platform::Pv {
        for r in &plan.demand {
            pv_mm::unmap(r.start, r.end).map_err(|e| alloc::format!("{e}"))?;
        }
    }
    if RELEASE_AT_BOOT.load(Ordering::Relaxed) {
        let before = map.held_bytes();
        demand::release_held(map, u64::MAX, &mut backing()).map_err(|(u, e)| alloc::format!("{:#x}..{:#x}: {e}", u.start, u.end))?;
        pages += (before - map.held_bytes()) >> PAGE_SHIFT;
    }
    let xen_pages = XenHypercalls.reservation_pages(false).ok().zip(XenHypercalls.reservation_pages(true).ok());
    Ok(Released { pages, xen_pages, demand_bytes: map.demand_bytes(), held_bytes: map.held_bytes(), unit_bytes: map.unit_bytes(), micros: (crate::clock::now_ns() - t0) / 1000 })
}

/// Gives `r` back at once (nothing maps it, or PV: `pv_mm::release` unmaps it first).
fn release_now(p: Platform, r: Range) -> Result<u64, String> {
    match p {
        Platform::Pv => pv_mm::release(r.start, r.end).map_err(|e| alloc::format!("{e}")),
        _ => {
            let (freed, holes) = pvh_decrease(r, false);
            if holes > 0 {
                log::warn!("memory: {holes} page(s) of {:#x}..{:#x} were not populated", r.start, r.end);
            }
            Ok(freed)
        }
    }
}

/// From the payload's WAIT, before it sleeps: gives up to 2 MiB of held memory back to Xen
/// if the deadline leaves time and no event waits. True if it did (the caller looks again at what
/// woke it before it comes back).
pub fn give_back_some(deadline_ns: u64) -> bool {
    /// Giving back one 2 MiB unit takes Xen 512 page removals: tens of ms in the lab.
    const UNIT_BUDGET_NS: u64 = 50_000_000;
    let Some(map) = demand() else { return false };
    if crate::hw::xen::shared_info::upcall_pending() || crate::clock::now_ns().saturating_add(UNIT_BUDGET_NS) > deadline_ns {
        return false;
    }
    // First what a new domain marked to give back again (mostly no frame is there: a look
    // at the p2m, or a failed 2 MiB decrease), 64 MiB a call.
    if demand::release_again_some(map, ((64 << 20) / map.unit_bytes()).max(1), &mut backing()) > 0 {
        return true;
    }
    if map.held_bytes() == 0 || GIVING_BACK_STOPPED.load(Ordering::Relaxed) {
        return false;
    }
    // Up to 2 MiB a call: one PVH unit, 32 PV units (given back together).
    let units = ((2 << 20) / map.unit_bytes()).max(1);
    match demand::release_held(map, units, &mut backing()) {
        Ok(pages) => {
            if map.held_bytes() == 0 {
                log::info!("memory: the payload's untouched memory is given back to Xen; {} KiB populated", map.populated_bytes() >> 10);
            } else if pages == 0 {
                // The platform's floor (PV): the rest stays held, mapped on first touch.
                GIVING_BACK_STOPPED.store(true, Ordering::Relaxed);
                log::info!("memory: {} KiB of the payload's untouched memory kept (the domain keeps {} KiB for a live migration's log-dirty bitmap); {} KiB populated", map.held_bytes() >> 10, pv_floor_pages() * 4, map.populated_bytes() >> 10);
            }
            pages > 0
        }
        Err((u, e)) => {
            log::warn!("memory: giving back {:#x}..{:#x} failed: {e}; the rest stays held", u.start, u.end);
            GIVING_BACK_STOPPED.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// In a new domain (the suspend sequence's memory step): marks what a live migration's
/// receiver may have populated for memory given back during it; the idle path gives it back
/// again (`give_back_some`), or a touch does first. Nothing here waits for Xen.
pub fn resume_in_new_domain() {
    let Some(map) = demand() else { return };
    let units = demand::start_epoch(map);
    if units > 0 {
        log::debug!("memory: {units} unit(s) given back during the last epoch, to give back again when the payload waits");
    }
}

/// PVH: frees guest frames by gfn, in naturally aligned extents of up to 2 MiB. Xen stops
/// an extent at its first frame that is not populated, so an extent it did not free is then
/// freed page by page, skipping the holes. `tolerant` (after a new domain, where most such
/// memory has no frames at all): an extent whose first page is a hole is taken to be all
/// holes. Returns the pages freed and the holes met.
fn pvh_decrease(r: Range, tolerant: bool) -> (u64, u64) {
    let (mut freed, mut holes) = (0, 0);
    for (pfn, order) in demand::extents(r, DOMU_MAX_EXTENT_ORDER) {
        // SAFETY: memory being given back: not the shim's, and nothing touches it until it
        // is populated and mapped anew.
        if order > 0 && matches!(unsafe { XenHypercalls.decrease_reservation(&[pfn], order) }, Ok(1)) {
            freed += 1 << order;
            continue;
        }
        let mut next = pfn;
        let end = pfn + (1 << order);
        while next < end {
            let mut frames = [0u64; 64];
            let n = ((end - next) as usize).min(frames.len());
            for (i, f) in frames[..n].iter_mut().enumerate() {
                *f = next + i as u64;
            }
            // SAFETY: as above.
            let done = unsafe { XenHypercalls.decrease_reservation(&frames[..n], 0) }.unwrap_or(0) as u64;
            freed += done;
            next += done;
            if done < n as u64 {
                // frames[done] is not populated: a hole.
                if tolerant && next == pfn {
                    holes += end - pfn;
                    break;
                }
                holes += 1;
                next += 1;
            }
        }
    }
    (freed, holes)
}

/// A page of zeros for `zero_marking_dirty` to copy from.
#[repr(C, align(4096))]
struct ZeroPage([u8; 4096]);
static ZERO_PAGE: ZeroPage = ZeroPage([0; 4096]);

/// PVH: zeroes newly populated pages by having Xen copy a page of zeros into each
/// (GNTTABOP_copy, frame to frame within the domain), because Xen then marks them dirty.
/// Xen 4.17 does not mark a page populated by XENMEM_populate_physmap dirty, and its p2m
/// entry stays writable without tracking until the migration's next round: what the guest
/// writes there first is not seen, and if the round before had found the page unpopulated
/// it never reaches the new host (measured in the lab: whole 2 MiB units populated during a
/// live migration's rounds were missing after it). One round later the page is tracked.
fn zero_marking_dirty(piece: Range) -> Result<(), PopulateError> {
    use xshim_shim::xen::abi::grant_table::{GnttabCopy, GnttabCopyPtr};
    use xshim_shim::xen::abi::memory::DOMID_SELF;
    let zero_gfn = &raw const ZERO_PAGE as u64 >> PAGE_SHIFT;
    let mut pfn = piece.start >> PAGE_SHIFT;
    let end = piece.end >> PAGE_SHIFT;
    while pfn < end {
        let mut ops = [GnttabCopy::default(); 32];
        let n = ((end - pfn) as usize).min(ops.len());
        for (i, op) in ops[..n].iter_mut().enumerate() {
            *op = GnttabCopy {
                source: GnttabCopyPtr { gmfn: zero_gfn, domid: DOMID_SELF, ..Default::default() },
                dest: GnttabCopyPtr { gmfn: pfn + i as u64, domid: DOMID_SELF, ..Default::default() },
                len: 4096,
                ..Default::default()
            };
        }
        // SAFETY: the destinations are demand memory just populated for the payload, which
        // is stopped while the shim backs it.
        match unsafe { XenHypercalls.gnttab_copy(&mut ops[..n]) } {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(PopulateError::Refused("GNTTABOP_copy (zeroing new pages)", None)),
            Err(e) => return Err(PopulateError::Refused("GNTTABOP_copy (zeroing new pages)", Some(e))),
        }
        pfn += n as u64;
    }
    Ok(())
}

/// PVH: a unit is populated by gfn (as one 2 MiB extent when it is whole, falling back to
/// pages when Xen has no 2 MiB free), mapped in the shim's tables, then zeroed.
struct PvhBacking;
impl Backing for PvhBacking {
    fn populate(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError> {
        let mut large = [piece.start >> PAGE_SHIFT];
        // SAFETY: demand memory not yet backed: no mapping of these gfns exists.
        let got_large = whole_unit && matches!(unsafe { XenHypercalls.populate_physmap(&mut large, DOMU_MAX_EXTENT_ORDER) }, Ok(1));
        if !got_large {
            let mut pfn = piece.start >> PAGE_SHIFT;
            let end = piece.end >> PAGE_SHIFT;
            while pfn < end {
                let mut frames = [0u64; 64];
                let n = ((end - pfn) as usize).min(frames.len());
                for (i, f) in frames[..n].iter_mut().enumerate() {
                    *f = pfn + i as u64;
                }
                // SAFETY: as above.
                let done = unsafe { XenHypercalls.populate_physmap(&mut frames[..n], 0) }.map_err(|e| PopulateError::Refused("XENMEM_populate_physmap", Some(e)))?;
                if done < n {
                    // SAFETY: the gfns just populated are not mapped by anything.
                    let _ = unsafe { XenHypercalls.decrease_reservation(&frames[..done], 0) };
                    return Err(PopulateError::OutOfMemory);
                }
                pfn += n as u64;
            }
        }
        paging::map_populated(piece.start, piece.end, whole_unit).map_err(|m| PopulateError::Refused(m, None))?;
        zero_marking_dirty(piece)
    }
    fn map_held(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError> {
        paging::map_populated(piece.start, piece.end, whole_unit).map_err(|m| PopulateError::Refused(m, None))?;
        self.zero(piece);
        Ok(())
    }
    fn release(&mut self, piece: Range, whole_unit: bool, mapped: bool) -> Result<(), PopulateError> {
        if mapped {
            self.zero(piece);
            paging::unmap_populated(piece.start, piece.end, whole_unit).map_err(|m| PopulateError::Refused(m, None))?;
        }
        let (_, holes) = pvh_decrease(piece, false);
        if holes > 0 && mapped {
            // The payload had this memory mapped: Xen should have had a frame behind every
            // page of it. Logged as evidence; the unit is given back all the same.
            log::warn!("memory: {holes} page(s) of payload memory {:#x}..{:#x} had no frame behind them when given back", piece.start, piece.end);
        }
        Ok(())
    }
    fn release_again(&mut self, piece: Range, _whole_unit: bool) {
        let _ = pvh_decrease(piece, true);
    }
    fn zero(&mut self, r: Range) {
        // SAFETY: mapped payload memory (callers pass only backed ranges); the payload is
        // stopped while the shim works, and Xen does not scrub what a live domain frees.
        unsafe { core::ptr::write_bytes(r.start as *mut u8, 0, (r.end - r.start) as usize) };
    }
}

/// PV: pages the domain keeps however little the payload uses. A PV guest's live migration
/// runs on shadow paging, whose pool Xen sizes when log-dirty is turned on from what the
/// domain holds then (128 pages a vCPU + 1 per 256 held: sh_min_allocation), and the
/// log-dirty bitmap's nodes come out of what is left above the 128 (shadow_alloc_p2m_page).
/// Holding only ~4 MiB leaves room for 2-3 nodes; the bitmap needs a top, two inner nodes
/// and a leaf per 32768 pfns, and with fewer `xl migrate` fails ("Failed to retrieve
/// logdirty bitmap (12 = Cannot allocate memory)", Xen: "failed page allocs while logging
/// dirty pages": measured in the lab with the pong payload, ~1,000 pages held). Those nodes
/// plus a margin of 4, times 256.
fn pv_floor_pages() -> u64 {
    let leaves = pv_mm::p2m_entries().div_ceil(32768);
    256 * (3 + leaves + 4)
}

/// This guest's backing: PV's or PVH's.
enum XenBacking {
    Pv(PvBacking),
    Pvh(PvhBacking),
}

fn backing() -> XenBacking {
    if IS_PV.load(Ordering::Relaxed) { XenBacking::Pv(PvBacking) } else { XenBacking::Pvh(PvhBacking) }
}

impl XenBacking {
    fn inner(&mut self) -> &mut dyn Backing {
        match self {
            XenBacking::Pv(b) => b,
            XenBacking::Pvh(b) => b,
        }
    }
}

impl Backing for XenBacking {
    fn populate(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError> {
        self.inner().populate(piece, whole_unit)
    }
    fn map_held(&mut self, piece: Range, whole_unit: bool) -> Result<(), PopulateError> {
        self.inner().map_held(piece, whole_unit)
    }
    fn release(&mut self, piece: Range, whole_unit: bool, mapped: bool) -> Result<(), PopulateError> {
        self.inner().release(piece, whole_unit, mapped)
    }
    fn release_again(&mut self, piece: Range, whole_unit: bool) {
        self.inner().release_again(piece, whole_unit)
    }
    fn zero(&mut self, r: Range) {
        self.inner().zero(r)
    }
    fn may_give_back(&mut self, pages: u64) -> bool {
        self.inner().may_give_back(pages)
    }
}

/// PV: by pfn, with the p2m and both page tables kept in step (pv_mm).
struct PvBacking;
impl Backing for PvBacking {
    fn populate(&mut self, piece: Range, _whole_unit: bool) -> Result<(), PopulateError> {
        pv_mm::back(piece.start, piece.end, true)
    }
    fn map_held(&mut self, piece: Range, _whole_unit: bool) -> Result<(), PopulateError> {
        pv_mm::back(piece.start, piece.end, false)
    }
    fn release(&mut self, piece: Range, _whole_unit: bool, mapped: bool) -> Result<(), PopulateError> {
        if mapped {
            self.zero(piece);
        }
        pv_mm::release(piece.start, piece.end).map(|_| ()).map_err(|_| PopulateError::Refused("giving PV frames back", None))
    }
    fn release_again(&mut self, piece: Range, _whole_unit: bool) {
        // The restorer wrote its own p2m: entries that are valid here are frames it kept.
        let _ = pv_mm::release(piece.start, piece.end);
    }
    fn may_give_back(&mut self, pages: u64) -> bool {
        XenHypercalls.reservation_pages(false).is_ok_and(|held| held.saturating_sub(pages) >= pv_floor_pages())
    }
    fn zero(&mut self, r: Range) {
        // SAFETY: as PvhBacking::zero.
        unsafe { core::ptr::write_bytes(r.start as *mut u8, 0, (r.end - r.start) as usize) };
    }
}

/// MEM_DISCARD of `[start, end)` (checked by the dispatcher: page-aligned, free memory):
/// whole units go back to Xen, the rest is zeroed; without demand population (no Xen, or
/// turned off) all of it is zeroed. Returns the bytes given back, or why Xen refused (the
/// book and the page tables may then disagree: the kernel ends the guest).
pub fn discard(start: u64, end: u64) -> Result<u64, String> {
    let Some(map) = demand() else {
        // SAFETY: the dispatcher checked the range is the payload's free memory, all of it
        // mapped without demand population; the payload is stopped in its call.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, (end - start) as usize) };
        return Ok(0);
    };
    demand::discard(map, start, end, &mut backing()).map_err(|(u, e)| alloc::format!("giving back {:#x}..{:#x}: {e}", u.start, u.end))
}

/// What MEM_INFO reports about `total` bytes of payload memory: (populated, limit).
pub fn info(total: u64) -> (u64, u64) {
    match demand() {
        Some(map) => (total.saturating_sub(map.demand_bytes()) + map.populated_bytes(), limit_bytes()),
        None => (total, 0),
    }
}

/// Populates every unit of `[start, end)` that is demand memory not yet backed; returns how
/// many it populated.
pub fn populate_range(start: u64, end: u64) -> Result<u64, (demand::Unit, PopulateError)> {
    let Some(map) = demand() else { return Ok(0) };
    demand::populate_range(map, start, end, &mut backing())
}

/// A not-present page fault at `addr` (the payload's or the shim's own access to payload
/// memory): populates its unit if it is demand memory not yet backed.
pub fn on_page_fault(addr: u64) -> FaultOutcome {
    let Some(map) = demand() else { return FaultOutcome::NotDemand };
    demand::on_fault(map, addr, &mut backing())
}
