//! `xshim build`: the shim and the payloads for bare metal, and host set-up.
use crate::util;
use std::process::Command;

/// Runs the project's host set-up script (apt packages, QEMU 10, the Rust target). Cheap
/// when everything is present.
pub fn setup() -> Result<(), String> {
    let script = util::root().join("tools/scripts/setup-host.sh");
    let st = Command::new("bash").arg(&script).status().map_err(|e| format!("{}: {e}", script.display()))?;
    if !st.success() {
        return Err(format!("host set-up failed ({st}); see the output above"));
    }
    Ok(())
}

pub fn build() -> Result<(), String> {
    let t0 = std::time::Instant::now();
    let st = util::cargo()
        .args(["build", "--release", "--target", util::TARGET, "-p", "xshim-shim", "--bin", "xshim-shim", "-p", "xshim-payload", "--bins"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !st.success() {
        return Err(format!("bare-metal build failed ({st}); if the target is missing, run `cargo xshim setup`"));
    }
    crate::build_c::build_examples()?;
    let shim = util::shim_elf();
    let size = std::fs::metadata(&shim).map(|m| m.len()).unwrap_or(0);
    eprintln!("xshim build: {} ({} KiB) and payloads {:?} + C {:?} in {:.1} s", shim.display(), size / 1024, util::PAYLOADS, crate::build_c::C_EXAMPLES, util::secs(t0));
    Ok(())
}
