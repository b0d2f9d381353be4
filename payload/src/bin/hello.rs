//! The smallest payload: greets, shows its command line, powers off with code 0. With
//! `fault=pf` or `fault=ud` it then faults instead (a page fault at 0x1dead000000, or ud2), to
//! test that the shim reports a payload exception and crashes the domain cleanly. The other
//! `fault=` words are attacks on the shim a buggy or hostile payload could make, each of which
//! the shim must stop as a payload fault, its own state untouched:
//! - `stack`: recursion until the stack runs out (the guard page below it);
//! - `shim-data`: a write just past the top of its stack, where the shim keeps its own data
//!   (among it, the record of the payload's memory window);
//! - `gate`: an `int3` written over the call gate's code;
//! - `cli`: `cli; jmp .`, which would stop every event (and so every suspend) for good.
//!
//! `bench=calls` prints the cost of one call into the shim (`xshim bench calls`).
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
                "bench=calls" => {
                    // The cost of one call into the shim: the cheapest call, many times.
                    const CALLS: u64 = 20_000;
                    let t0 = shim.monotonic_ns();
                    for _ in 0..CALLS {
                        core::hint::black_box(shim.generation());
                    }
                    let ns = shim.monotonic_ns() - t0;
                    let _ = writeln!(shim, "hello: bench calls={CALLS} ns_per_call={}", ns / CALLS);
                }
                "fault=stack" => {
                    let _ = writeln!(shim, "hello: recursing until the stack ({} KiB) runs out", shim.boot.stack_size / 1024);
                    let depth = recurse(1 << 20);
                    let _ = writeln!(shim, "hello: recursion returned {depth}: no fault happened");
                    return 1;
                }
                "fault=shim-data" => {
                    let target = (shim.boot_at + 4095) & !4095;
                    let _ = writeln!(shim, "hello: writing past the top of the stack, at {target:#x}");
                    // SAFETY: none: the point is that the shim's memory is out of reach.
                    unsafe { core::ptr::write_volatile(target as *mut u64, 0x5eed) };
                    let _ = writeln!(shim, "hello: wrote {target:#x}: no fault happened");
                    return 1;
                }
                "fault=gate" => {
                    let gate = shim.boot.call;
                    let _ = writeln!(shim, "hello: writing int3 over the call gate at {gate:#x}");
                    // SAFETY: none: the point is that the call gate's code is read-only.
                    unsafe { core::ptr::write_volatile(gate as *mut u8, 0xcc) };
                    let _ = writeln!(shim, "hello: wrote the call gate: no fault happened");
                    return 1;
                }
                "fault=cli" => {
                    let _ = writeln!(shim, "hello: cli; jmp .");
                    // SAFETY: none needed: in user mode `cli` raises #GP, which the shim reports.
                    unsafe { core::arch::asm!("cli", "2:", "jmp 2b", options(noreturn)) };
                }
                _ => {}
            }
        }
        0
    }
    /// Uses 4 KiB of stack per level, `n` levels deep.
    #[inline(never)]
    fn recurse(n: u64) -> u64 {
        let mut frame = [0u8; 4096];
        frame[0] = n as u8;
        core::hint::black_box(&mut frame);
        if n == 0 {
            return 0;
        }
        recurse(n - 1) + frame[0] as u64
    }

    xshim_payload::payload_main!(main);
}
