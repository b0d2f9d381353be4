//! The smallest payload: greets, shows its command line, powers off with code 0.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hello is a payload: build it with `cargo xshim build` and run it under the shim");
}

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use xshim_payload::rt::Shim;

    fn main(shim: &mut Shim) -> u64 {
        let mut buf = [0u8; 256];
        let cmdline = shim.cmdline(&mut buf);
        let version = shim.boot.abi_version;
        let _ = writeln!(shim, "Hello from an xshim payload (ABI v{version}); cmdline: \"{cmdline}\"");
        0
    }
    xshim_payload::payload_main!(main);
}
