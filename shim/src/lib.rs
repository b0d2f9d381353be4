//! xshim's host-testable core: Xen's public ABI mirrored in Rust, the payload loader, start-of-day
//! parsing, ring and xenstore wire logic, and the suspend/resume sequence. The bare-metal parts
//! (entry, traps, hypercalls, drivers) live in the binary (`main.rs`) and use this library.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod abi_dispatch;
pub mod address_space;
pub mod demand;
pub mod fault_decode;
pub mod layout;
pub mod loader;
pub mod payload_mem;
pub mod rtc;
pub mod start_info;
pub mod suspend;
pub mod xen;
