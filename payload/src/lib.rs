//! The xshim payload ABI crate: `abi` is the boundary itself; `rt` is a small runtime for
//! payloads written in Rust; `ticker_model` is the ticker's deterministic memory workload,
//! shared with the host tools that check it.
#![no_std]

pub mod abi;
pub mod journal_model;
pub mod rt;
pub mod ticker_model;
