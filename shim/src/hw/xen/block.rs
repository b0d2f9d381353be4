//! A virtual block device's machine side, for the host-tested `xshim_shim::xen::blkfront`:
//! its ring page and bounce pages (the shim's own memory, page-aligned, from the heap), the
//! ring's volatile accessors, grants and the event channel. No policy: which devices, what to
//! log and what a failure means are the platform's.
use super::grant_table;
use super::ring_page::{self, RingPage};
use xshim_shim::xen::abi::blkif::{BlkifRequest, BlkifResponse, BLKIF_ENTRY_BYTES};
use xshim_shim::xen::blkfront::{BlkEnv, PAGE_BYTES};
use xshim_shim::xen::xenbus::DeviceError;

/// A device's pages: one for the ring, `pool` bounce pages after it (from the heap), and
/// `more` bounce pages at `more_base` (RAM the platform set aside once the payload was
/// placed: numbers `pool..pool + more`). Kept for the guest's life (a backend may hold them
/// mapped).
pub struct BlockPages {
    base: *mut u8,
    pool: u16,
    more_base: u64,
    more: u16,
}

// SAFETY: used under the platform's lock on one vCPU.
unsafe impl Send for BlockPages {}

impl BlockPages {
    pub fn allocate(pool: u16) -> Option<BlockPages> {
        let layout = core::alloc::Layout::from_size_align((1 + pool as usize) * PAGE_BYTES, PAGE_BYTES).ok()?;
        // SAFETY: a non-zero size; the memory is never freed (see above).
        let base = unsafe { alloc::alloc::alloc_zeroed(layout) };
        (!base.is_null()).then_some(BlockPages { base, pool, more_base: 0, more: 0 })
    }

    pub fn pool(&self) -> u16 {
        self.pool
    }

    /// Takes `count` more bounce pages at `base` (page-aligned, mapped, zero or not; the
    /// shim's for the guest's life) and returns their numbers. Once only.
    pub fn add(&mut self, base: u64, count: u16) -> core::ops::Range<u16> {
        assert!(self.more == 0 && base.is_multiple_of(PAGE_BYTES as u64) && self.pool.checked_add(count).is_some());
        self.more_base = base;
        self.more = count;
        self.pool..self.pool + count
    }

    fn ring_va(&self) -> u64 {
        self.base as u64
    }

    fn page_va(&self, page: u16) -> u64 {
        if page < self.pool {
            return self.base as u64 + (1 + page as u64) * PAGE_BYTES as u64;
        }
        assert!(page - self.pool < self.more, "bounce page {page} of {}", self.pool + self.more);
        self.more_base + (page - self.pool) as u64 * PAGE_BYTES as u64
    }
}

/// `BlkEnv` over a device's pages.
pub struct MachineBlk<'a> {
    pages: &'a BlockPages,
    ring: BlkRing,
}

type BlkRing = RingPage<BlkifRequest, BlkifResponse, BLKIF_ENTRY_BYTES>;

impl<'a> MachineBlk<'a> {
    pub fn new(pages: &'a BlockPages) -> Self {
        // SAFETY: the device's first page, ours for the guest's life.
        MachineBlk { pages, ring: unsafe { RingPage::new(pages.base) } }
    }
}

impl BlkEnv for MachineBlk<'_> {
    type Ring = BlkRing;
    fn ring(&mut self) -> &mut BlkRing {
        &mut self.ring
    }
    fn grant_ring(&mut self, domid: u16) -> Result<u32, DeviceError> {
        grant_table::grant(domid, self.pages.ring_va(), false)
    }
    fn grant_page(&mut self, page: u16, domid: u16, readonly: bool) -> Result<u32, DeviceError> {
        grant_table::grant(domid, self.pages.page_va(page), readonly)
    }
    fn end_grant(&mut self, gref: u32) -> bool {
        grant_table::end(gref)
    }
    fn page(&mut self, page: u16) -> &mut [u8; PAGE_BYTES] {
        // SAFETY: a bounce page of this device; blkfront takes it only while no request that
        // names it is in flight (before granting, after the response), so the backend does
        // not touch it meanwhile; `&mut self` keeps the reference unique.
        unsafe { &mut *(self.pages.page_va(page) as *mut [u8; PAGE_BYTES]) }
    }
    fn alloc_port(&mut self, domid: u16) -> Result<u32, DeviceError> {
        ring_page::alloc_port(domid)
    }
    fn notify(&mut self, port: u32) {
        ring_page::notify(port)
    }
}
