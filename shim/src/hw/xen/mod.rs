//! Xen as hardware: the hypercall page, the pages Xen shares with us (shared_info,
//! vcpu_info, the grant frames), event channels, Xen time, the console and xenstore rings,
//! and the PV memory model (start_info, p2m/m2p, page tables).
pub mod block;
pub mod console_ring;
pub mod grant_table;
pub mod hypercall;
pub mod net;
pub mod pv_mm;
pub mod ring_page;
pub mod shared_info;
pub mod shared_ring;
pub mod time;
pub mod xenstore;
