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
use xshim_shim::demand::{self, Backing, DemandMap, FaultOutcome, MemoryPlan, PopulateError, Range};
use xshim_shim::layout::PAGE_SHIFT;
use xshim_shim::xen::abi::memory::DOMU_MAX_EXTENT_ORDER;

static DEMAND: spin::Once<DemandMap> = spin::Once::new();
/// `xshim.demand=0` keeps all memory populated (as before demand population existed).
static ENABLED: AtomicBool = AtomicBool::new(true);
/// PV: log2 of the populate unit in bytes (`xshim.populate_unit=<KiB>`). PVH always uses
/// 2 MiB: one large page in the shim's tables and one extent for Xen.
static PV_UNIT_SHIFT: AtomicU32 = AtomicU32::new(16);
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
    pub pages: u64,
    /// Pages Xen holds for the domain afterwards, and at most may (max_pages).
    pub xen_pages: Option<(u64, u64)>,
    pub demand_bytes: u64,
    pub unit_bytes: u64,
    pub micros: u64,
}

/// Records the demand map and gives `plan.release` back to Xen. Before the payload's page
/// tables are built (PVH: `paging::install` leaves what is released unmapped; PV: the
/// kernel's mappings are cleared here, and the user table copies only what is backed).
pub fn release_at_boot(p: Platform, plan: &MemoryPlan) -> Result<Released, String> {
    let t0 = crate::clock::now_ns();
    let shift = if p == Platform::Pv { PV_UNIT_SHIFT.load(Ordering::Relaxed) } else { PVH_UNIT_SHIFT };
    let map = DEMAND.call_once(|| DemandMap::new(&plan.demand, shift));
    let mut pages = 0;
    for r in &plan.release {
        pages += match p {
            Platform::Pv => pv_mm::release(r.start, r.end).map_err(|e| alloc::format!("{e}"))?,
            _ => pvh_release(*r)?,
        };
    }
    let xen_pages = XenHypercalls.reservation_pages(false).ok().zip(XenHypercalls.reservation_pages(true).ok());
    Ok(Released { pages, xen_pages, demand_bytes: map.demand_bytes(), unit_bytes: map.unit_bytes(), micros: (crate::clock::now_ns() - t0) / 1000 })
}

/// PVH: frees guest frames by gfn, in naturally aligned extents of up to 2 MiB, batched by
/// order. Nothing maps them afterwards: `paging::install` leaves them out.
fn pvh_release(r: Range) -> Result<u64, String> {
    const BATCH: usize = 64;
    let mut batch = [0u64; BATCH];
    let (mut n, mut order) = (0usize, 0u32);
    let flush = |frames: &[u64], order: u32| -> Result<(), String> {
        // SAFETY: released memory: not the shim's, not the loaded payload's, not touched
        // again until populated anew (and then through `paging::map_populated`).
        let done = unsafe { XenHypercalls.decrease_reservation(frames, order) }.map_err(|e| alloc::format!("XENMEM_decrease_reservation: {e}"))?;
        if done != frames.len() {
            return Err(alloc::format!("XENMEM_decrease_reservation: Xen did {done} of {} extents of order {order}", frames.len()));
        }
        Ok(())
    };
    for (pfn, o) in demand::extents(r, DOMU_MAX_EXTENT_ORDER) {
        if n == BATCH || (n > 0 && o != order) {
            flush(&batch[..n], order)?;
            n = 0;
        }
        order = o;
        batch[n] = pfn;
        n += 1;
    }
    if n > 0 {
        flush(&batch[..n], order)?;
    }
    Ok(r.pages())
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
        // SAFETY: just populated and mapped; Xen does not scrub pages a live domain frees.
        unsafe { core::ptr::write_bytes(piece.start as *mut u8, 0, (piece.end - piece.start) as usize) };
        Ok(())
    }
}

/// PV: by pfn, with the p2m and both page tables kept in step (pv_mm).
struct PvBacking;
impl Backing for PvBacking {
    fn populate(&mut self, piece: Range, _whole_unit: bool) -> Result<(), PopulateError> {
        pv_mm::populate(piece.start, piece.end)
    }
}

/// Populates every unit of `[start, end)` that is demand memory not yet backed; returns how
/// many it populated.
pub fn populate_range(p: Platform, start: u64, end: u64) -> Result<u64, (demand::Unit, PopulateError)> {
    let Some(map) = demand() else { return Ok(0) };
    match p {
        Platform::Pv => demand::populate_range(map, start, end, &mut PvBacking),
        Platform::Pvh => demand::populate_range(map, start, end, &mut PvhBacking),
        Platform::Native => Ok(0),
    }
}

/// A not-present page fault at `addr` (the payload's or the shim's own access to payload
/// memory): populates its unit if it is demand memory not yet backed.
pub fn on_page_fault(p: Platform, addr: u64) -> FaultOutcome {
    let Some(map) = demand() else { return FaultOutcome::NotDemand };
    match p {
        Platform::Pv => demand::on_fault(map, addr, &mut PvBacking),
        Platform::Pvh => demand::on_fault(map, addr, &mut PvhBacking),
        Platform::Native => FaultOutcome::NotDemand,
    }
}
