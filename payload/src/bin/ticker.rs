//! Prints `TICK <n> <monotonic_ns> <checksum>` once a second, where the checksum covers
//! TICKER_BYTES of memory filled at start and mutated deterministically each tick. Lines
//! that a checker can use to prove nothing was lost across save/restore.
//! Command line: `ticks=N` stops after N ticks (default: forever); `spin=1` computes
//! between ticks in a loop that never calls the shim (to show suspend does not need it).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ticker is a payload: build it with `cargo xshim build` and run it under the shim");
}

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use xshim_payload::abi::MemRegion;
    use xshim_payload::rt::Shim;
    use xshim_payload::ticker_model::{checksum, fill, mutate, TICKER_BYTES};

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn main(shim: &mut Shim) -> u64 {
        let mut buf = [0u8; 256];
        let cmdline = shim.cmdline(&mut buf);
        let ticks = arg(cmdline, "ticks").unwrap_or(u64::MAX);
        let spin = arg(cmdline, "spin").unwrap_or(0) != 0;
        let mut regions = [MemRegion::default(); 16];
        let Some(region) = shim.memmap(&mut regions).iter().find(|r| r.len as usize >= TICKER_BYTES).copied() else {
            let _ = writeln!(shim, "TICKER-ERROR no memory region of {} bytes", TICKER_BYTES);
            return 2;
        };
        // SAFETY: the shim gave us this region for our exclusive use; it is identity-mapped,
        // 8-byte aligned (page-aligned) and at least TICKER_BYTES long.
        let words = unsafe { core::slice::from_raw_parts_mut(region.base as *mut u64, TICKER_BYTES / 8) };
        fill(words);
        let _ = writeln!(shim, "TICKER start bytes={} base={:#x} spin={}", TICKER_BYTES, region.base, spin as u8);
        let start = shim.monotonic_ns();
        let mut n = 0u64;
        while n < ticks {
            n += 1;
            mutate(words, n);
            let sum = checksum(words);
            let deadline = start + n * 1_000_000_000;
            if spin {
                // Busy compute without any shim call until the deadline passes: reads the
                // clock only through the checksum loop's own progress.
                let mut x = sum;
                loop {
                    for _ in 0..100_000 {
                        x = x.rotate_left(3) ^ 0x9e37;
                    }
                    core::hint::black_box(x);
                    if shim.monotonic_ns() >= deadline {
                        break;
                    }
                }
            } else {
                shim.sleep_until(deadline);
            }
            let _ = writeln!(shim, "TICK {} {} {:016x}", n, shim.monotonic_ns(), sum);
        }
        let _ = writeln!(shim, "TICKER done ticks={}", n);
        0
    }
    xshim_payload::payload_main!(main);
}
