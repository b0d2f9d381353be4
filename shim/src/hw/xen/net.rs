//! A virtual network interface's machine side, for the host-tested
//! `xshim_shim::xen::netfront`: its two ring pages and buffer pages (the shim's own memory,
//! page-aligned, from the heap), grants and the event channel. No policy: which interfaces,
//! what to log and what a failure means are the platform's.
use super::grant_table;
use super::ring_page::{self, RingPage};
use xshim_shim::xen::abi::netif::{NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse, NETIF_RX_ENTRY_BYTES, NETIF_TX_ENTRY_BYTES};
use xshim_shim::xen::netfront::{Buffer, NetEnv, PAGE_BYTES, RX_BUFS, TX_BUFS};
use xshim_shim::xen::xenbus::DeviceError;

/// Pages: TX ring, RX ring, TX_BUFS TX buffers, RX_BUFS RX buffers. Allocated once and kept
/// for the guest's life (a backend may hold them mapped).
pub struct NetPages {
    base: *mut u8,
}

// SAFETY: used under the platform's lock on one vCPU.
unsafe impl Send for NetPages {}

const PAGES: usize = 2 + TX_BUFS as usize + RX_BUFS as usize;

impl NetPages {
    pub fn allocate() -> Option<NetPages> {
        let layout = core::alloc::Layout::from_size_align(PAGES * PAGE_BYTES, PAGE_BYTES).ok()?;
        // SAFETY: a non-zero size; the memory is never freed (see above).
        let base = unsafe { alloc::alloc::alloc_zeroed(layout) };
        (!base.is_null()).then_some(NetPages { base })
    }

    fn page_va(&self, index: usize) -> u64 {
        assert!(index < PAGES, "net page {index} of {PAGES}");
        self.base as u64 + (index * PAGE_BYTES) as u64
    }

    fn buffer_va(&self, buf: Buffer) -> u64 {
        match buf {
            Buffer::Tx(i) => self.page_va(2 + i as usize),
            Buffer::Rx(i) => self.page_va(2 + TX_BUFS as usize + i as usize),
        }
    }
}

type TxRing = RingPage<NetifTxRequest, NetifTxResponse, NETIF_TX_ENTRY_BYTES>;
type RxRing = RingPage<NetifRxRequest, NetifRxResponse, NETIF_RX_ENTRY_BYTES>;

/// `NetEnv` over an interface's pages.
pub struct MachineNet<'a> {
    pages: &'a NetPages,
    tx: TxRing,
    rx: RxRing,
}

impl<'a> MachineNet<'a> {
    pub fn new(pages: &'a NetPages) -> Self {
        // SAFETY: the interface's first two pages, ours for the guest's life.
        let (tx, rx) = unsafe { (TxRing::new(pages.page_va(0) as *mut u8), RxRing::new(pages.page_va(1) as *mut u8)) };
        MachineNet { pages, tx, rx }
    }
}

impl NetEnv for MachineNet<'_> {
    type TxRing = TxRing;
    type RxRing = RxRing;
    fn tx_ring(&mut self) -> &mut TxRing {
        &mut self.tx
    }
    fn rx_ring(&mut self) -> &mut RxRing {
        &mut self.rx
    }
    fn grant_rings(&mut self, domid: u16) -> Result<(u32, u32), DeviceError> {
        Ok((grant_table::grant(domid, self.pages.page_va(0), false)?, grant_table::grant(domid, self.pages.page_va(1), false)?))
    }
    fn grant_buffer(&mut self, buf: Buffer, domid: u16, readonly: bool) -> Result<u32, DeviceError> {
        grant_table::grant(domid, self.pages.buffer_va(buf), readonly)
    }
    fn buffer(&mut self, buf: Buffer) -> &mut [u8; PAGE_BYTES] {
        // SAFETY: a buffer page of this interface. netfront writes a TX page only while it is
        // not in flight and reads an RX page only between its response and its re-posting, so
        // the backend does not touch it meanwhile; `&mut self` keeps the reference unique.
        unsafe { &mut *(self.pages.buffer_va(buf) as *mut [u8; PAGE_BYTES]) }
    }
    fn alloc_port(&mut self, domid: u16) -> Result<u32, DeviceError> {
        ring_page::alloc_port(domid)
    }
    fn notify(&mut self, port: u32) {
        ring_page::notify(port)
    }
}
