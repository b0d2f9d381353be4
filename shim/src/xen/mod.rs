//! Xen: the public ABI (`abi`), and the pure protocol logic over it (rings, xenstore wire).
pub mod abi;
pub mod ring;
pub mod xenstore_wire;
