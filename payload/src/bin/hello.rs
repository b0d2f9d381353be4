//! The smallest payload: greets, shows its command line, powers off with code 0. With
//! `fault=pf` or `fault=ud` it then faults instead (a page fault at 0x1dead000000, or ud2), to
//! test that the shim reports a payload exception and crashes the domain cleanly.
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
        for word in cmdline.split_whitespace() {
            match word {
                "fault=pf" => {
                    let _ = writeln!(shim, "hello: reading unmapped address 0x1dead000000");
                    // SAFETY: none: the point is the page fault (the shim reports it and
                    // crashes the domain; this never returns).
                    let v = unsafe { core::ptr::read_volatile(0x1de_ad00_0000 as *const u64) };
                    let _ = writeln!(shim, "hello: read {v:#x}: no fault happened");
                    return 1;
                }
                "fault=ud" => {
                    let _ = writeln!(shim, "hello: executing ud2");
                    // SAFETY: none needed: ud2 raises #UD, which the shim reports.
                    unsafe { core::arch::asm!("ud2") };
                    return 1;
                }
                _ => {}
            }
        }
        0
    }
    xshim_payload::payload_main!(main);
}
