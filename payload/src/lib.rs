//! The xshim payload ABI crate: `abi` is the boundary itself; `rt` is a small runtime for
//! payloads written in Rust; `ticker_model` is the ticker's deterministic memory workload,
//! shared with the host tools that check it; `pong_model` is the pong payload's answers to
//! ARP, ICMP echo and UDP echo; `smp_model` is the smp-ticker's per-vCPU workload.
#![no_std]

pub mod abi;
pub mod journal_model;
pub mod pong_model;
pub mod rt;
pub mod smp_model;
pub mod ticker_model;
