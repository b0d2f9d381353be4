//! Paths, nested cargo, and small process helpers shared by the subcommands.
use std::path::{Path, PathBuf};
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-none";

/// The workspace root (the CLI lives in tools/).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tools/ has a parent").to_path_buf()
}

/// Where `cargo xshim build` puts the shim and payloads.
pub fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join(TARGET).join("release")
}

pub fn shim_elf() -> PathBuf {
    artifacts().join("xshim-shim")
}

pub fn payload_elf(name: &str) -> PathBuf {
    artifacts().join(name)
}

pub const PAYLOADS: [&str; 3] = ["hello", "ticker", "abi-check"];

/// The lab's cache directory: $XSHIM_LAB_CACHE, else ~/.cache/xshim-lab.
pub fn lab_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("XSHIM_LAB_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache").join("xshim-lab")
}

/// A `cargo` command that does not inherit the variables `cargo run` set for this tool
/// (a nested cargo that sees them rebuilds in loops or builds the wrong thing).
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let strip = (k.starts_with("CARGO") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR") || k.starts_with("RUSTC") || k.starts_with("__CARGO") || k == "RUSTDOC";
        if strip {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(root());
    cmd
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Seconds since `t0`, for reports.
pub fn secs(t0: std::time::Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}
