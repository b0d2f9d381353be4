//! Xen: the public ABI (`abi`), typed frames and errors, the hypercall interface, and the
//! pure logic over them (rings, xenstore wire, control protocol, pvclock, p2m tree, PV page
//! planning, and the PVH and PV operations the suspend steps use).
pub mod abi;
pub mod blkfront;
pub mod control;
pub mod errno;
pub mod frames;
pub mod grant_refs;
pub mod front_ring;
pub mod guest;
pub mod hypercalls;
pub mod netfront;
pub mod p2m_tree;
pub mod pv;
pub mod pv_layout;
pub mod pvclock;
pub mod pvh;
pub mod ring;
pub mod xenbus;
pub mod xenstore_wire;
