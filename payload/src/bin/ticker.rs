//! Prints `TICK <n> <monotonic_ns> <checksum>` once a second, where the checksum covers
//! TICKER_BYTES of memory filled at start and mutated deterministically each tick. Lines
//! that a checker can use to prove nothing was lost across save/restore.
//! Command line: `ticks=N` stops after N ticks (default: forever); `spin=1` computes
//! between ticks in a loop that never calls the shim (to show suspend does not need it).
//! `grow=MiB` touches that much more memory gradually, `grow_step=KiB` a tick (default
//! 4096), and each tick checks every page it touched before still holds what it wrote
//! (`GROW <n> touched=<KiB> populated=<KiB> limit=<KiB> discarded=<KiB> bad=<words> us=<the
//! step's time>`); `discard=N` gives it
//! all back (MEM_DISCARD) N ticks after it is all touched, checks it reads as zeros, and
//! starts again with a new pattern.
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
    use xshim_payload::ticker_model::{checksum, fill, grow_word, mutate, TICKER_BYTES};

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    fn main(shim: &mut Shim) -> u64 {
        let mut buf = [0u8; 256];
        let cmdline = shim.cmdline(&mut buf);
        let ticks = arg(cmdline, "ticks").unwrap_or(u64::MAX);
        let spin = arg(cmdline, "spin").unwrap_or(0) != 0;
        let grow = arg(cmdline, "grow").unwrap_or(0) << 20;
        let grow_step = (arg(cmdline, "grow_step").unwrap_or(4096) << 10).max(4096) & !4095;
        let discard_after = arg(cmdline, "discard").unwrap_or(0);
        let mut regions = [MemRegion::default(); 16];
        let want = TICKER_BYTES as u64 + grow;
        let Some(region) = shim.memmap(&mut regions).iter().find(|r| r.len >= want).copied() else {
            let _ = writeln!(shim, "TICKER-ERROR no memory region of {want} bytes");
            return 2;
        };
        let mut growth = Growth { base: region.base + TICKER_BYTES as u64, limit: grow, step: grow_step, touched: 0, epoch: 0, full_for: 0, discard_after };
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
            if grow > 0 {
                growth.tick(shim, n);
            }
        }
        let _ = writeln!(shim, "TICKER done ticks={}", n);
        0
    }
    /// Memory touched a step at a time (`grow=`): the first and last word of every page
    /// hold a value only that page, that word and the current epoch give.
    struct Growth {
        base: u64,
        limit: u64,
        step: u64,
        touched: u64,
        epoch: u64,
        full_for: u64,
        discard_after: u64,
    }

    impl Growth {
        fn words(page: u64) -> [*mut u64; 2] {
            [page as *mut u64, (page + 4096 - 8) as *mut u64]
        }

        /// Checks every page touched so far, touches the next step, or (`discard=`) gives it
        /// all back; one GROW line.
        fn tick(&mut self, shim: &mut Shim, n: u64) {
            let mut bad = 0u64;
            let mut page = self.base;
            while page < self.base + self.touched {
                for (i, w) in Self::words(page).into_iter().enumerate() {
                    // SAFETY: a page of the region the shim gave us, inside what we touched.
                    if unsafe { w.read_volatile() } != grow_word(page, i as u64, self.epoch) {
                        bad += 1;
                    }
                }
                page += 4096;
            }
            let mut discarded = 0;
            let t0 = shim.monotonic_ns();
            if self.touched < self.limit {
                let end = (self.touched + self.step).min(self.limit);
                let mut page = self.base + self.touched;
                while page < self.base + end {
                    for (i, w) in Self::words(page).into_iter().enumerate() {
                        // SAFETY: as above, the next pages of the region.
                        unsafe { w.write_volatile(grow_word(page, i as u64, self.epoch)) };
                    }
                    page += 4096;
                }
                self.touched = end;
            } else if self.discard_after > 0 {
                self.full_for += 1;
                if self.full_for >= self.discard_after {
                    // SAFETY: nothing refers into the grown area but these raw pointers.
                    discarded = unsafe { shim.mem_discard(self.base, self.limit) }.unwrap_or(0);
                    // It reads as zeros now (this touches one page of it again).
                    // SAFETY: as above.
                    if unsafe { (self.base as *const u64).read_volatile() } != 0 {
                        bad += 1;
                    }
                    self.touched = 0;
                    self.full_for = 0;
                    self.epoch += 1;
                }
            }
            // How long touching the new pages (or the discard) took: first touches included.
            let took_us = (shim.monotonic_ns() - t0) / 1000;
            let m = shim.mem_info().unwrap_or_default();
            let _ = writeln!(shim, "GROW {n} touched={} populated={} limit={} discarded={} bad={bad} us={took_us}", self.touched >> 10, m.populated >> 10, m.limit >> 10, discarded >> 10);
        }
    }

    xshim_payload::payload_main!(main);
}
