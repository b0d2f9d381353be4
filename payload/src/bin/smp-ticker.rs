//! smp-ticker: every vCPU mutates a region of its own and records each step in data shared
//! under one lock (`xshim_payload::smp_model` says what and what the lines mean). vCPU 0
//! starts the others (VCPU_START), then works like them and, once a second, prints the
//! shared record: the host checker proves continuity per vCPU and that no update under the
//! lock was lost. Command line: `vcpus=N` (default: all the shim offers), `ticks=N` (stop
//! after N ticks; default forever), `spin=1` (no vCPU ever calls WAIT: each computes
//! between steps, so a suspend must stop them wherever they are).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("smp-ticker is a payload: build it with `cargo xshim build` and run it under the shim");
}

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use xshim_payload::abi::{MemRegion, MAX_VCPUS};
    use xshim_payload::rt::{Shim, SpinLock};
    use xshim_payload::smp_model::{checksum, fill, step, Shared, REGION_WORDS, STEPS_PER_TICK};

    static SHARED: SpinLock<Shared> = SpinLock::new(Shared::new());
    const STACK_BYTES: usize = 64 * 1024;
    const TICK_NS: u64 = 1_000_000_000;
    /// Pure computation between steps in spin mode (keeps a step's pace near a millisecond,
    /// so the checker's replay stays cheap, without any shim call).
    const SPIN_BETWEEN_STEPS: u32 = 200_000;

    /// What a vCPU needs, at a fixed place in the payload's memory.
    #[derive(Clone, Copy)]
    struct Ctx {
        shim: Shim,
        vcpu: u64,
        region: u64,
        start_ns: u64,
        ticks: u64,
        spin: bool,
    }

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    /// One vCPU's life: steps, a VTICK line every STEPS_PER_TICK steps (paced: one tick a
    /// second; spinning: as fast as it computes), and on vCPU 0 the SMP line each tick.
    fn work(ctx: Ctx) -> u64 {
        let mut shim = ctx.shim;
        // SAFETY: the region is this vCPU's alone (vCPU 0 carved disjoint ones from MEMMAP).
        let words = unsafe { core::slice::from_raw_parts_mut(ctx.region as *mut u64, REGION_WORDS) };
        fill(ctx.vcpu, words);
        let mut s = 0u64;
        for tick in 1..=ctx.ticks {
            let deadline = ctx.start_ns + tick * TICK_NS;
            loop {
                s += 1;
                step(ctx.vcpu, s, words);
                SHARED.lock().record(ctx.vcpu, s);
                if ctx.spin {
                    let mut x = s;
                    for _ in 0..SPIN_BETWEEN_STEPS {
                        x = core::hint::black_box(x.rotate_left(3) ^ 0x9e37);
                    }
                }
                if s % STEPS_PER_TICK == 0 {
                    let _ = writeln!(shim, "VTICK {} {} {:016x}", ctx.vcpu, s, checksum(words));
                    if !ctx.spin || shim.monotonic_ns() >= deadline {
                        break;
                    }
                }
            }
            if !ctx.spin {
                shim.sleep_until(deadline);
            }
            if ctx.vcpu == 0 {
                let shared = *SHARED.lock();
                let mut line = [0u8; 256];
                let mut w = Line { buf: &mut line, len: 0 };
                let _ = write!(w, "SMP {} counter={} sum={:016x} steps=", tick, shared.counter, shared.sum);
                for v in 0..MAX_VCPUS as usize {
                    let _ = write!(w, "{}{}", if v == 0 { "" } else { "," }, shared.steps[v]);
                }
                let _ = w.write_str("\n");
                // One CONSOLE_WRITE: written in two, another vCPU's line came between them.
                let n = w.len;
                let _ = shim.console_write(&line[..n]);
            }
        }
        s
    }

    /// A line gathered in a stack buffer (one CONSOLE_WRITE).
    struct Line<'a> {
        buf: &'a mut [u8],
        len: usize,
    }
    impl core::fmt::Write for Line<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = (self.len + s.len()).min(self.buf.len());
            self.buf[self.len..end].copy_from_slice(&s.as_bytes()[..end - self.len]);
            self.len = end;
            Ok(())
        }
    }

    extern "sysv64" fn vcpu_main(ctx: u64) -> ! {
        // SAFETY: vCPU 0 wrote this Ctx before VCPU_START and never touches it again.
        let ctx = unsafe { (ctx as *const Ctx).read() };
        let mut shim = ctx.shim;
        let steps = work(ctx);
        let _ = writeln!(shim, "VDONE {} steps={}", ctx.vcpu, steps);
        loop {
            shim.wait(u64::MAX);
        }
    }

    fn main(shim: &mut Shim) -> u64 {
        let mut buf = [0u8; 256];
        let cmdline = shim.cmdline(&mut buf);
        let offered = shim.vcpu_count().min(MAX_VCPUS);
        let vcpus = arg(cmdline, "vcpus").unwrap_or(offered).clamp(1, MAX_VCPUS);
        let ticks = arg(cmdline, "ticks").unwrap_or(u64::MAX);
        let spin = arg(cmdline, "spin").unwrap_or(0) != 0;
        if vcpus > offered {
            let _ = writeln!(shim, "SMPTICKER-ERROR vcpus={vcpus} asked, the shim offers {offered}");
            return 2;
        }
        // Per vCPU: a region, its Ctx and a stack, all from the largest MEMMAP region.
        let per_vcpu = (REGION_WORDS * 8 + STACK_BYTES + 4096) as u64;
        let mut regions = [MemRegion::default(); 16];
        let Some(r) = shim.memmap(&mut regions).iter().max_by_key(|r| r.len).copied().filter(|r| r.len >= per_vcpu * vcpus) else {
            let _ = writeln!(shim, "SMPTICKER-ERROR no memory region of {} bytes", per_vcpu * vcpus);
            return 2;
        };
        let start_ns = shim.monotonic_ns();
        let _ = writeln!(shim, "SMPTICKER start vcpus={vcpus} region_bytes={} spin={}", REGION_WORDS * 8, spin as u8);
        let ctx_of = |v: u64| Ctx { shim: *shim, vcpu: v, region: r.base + v * per_vcpu, start_ns, ticks, spin };
        for v in 1..vcpus {
            let base = r.base + v * per_vcpu;
            let ctx_at = base + (REGION_WORDS * 8) as u64;
            let stack_at = ctx_at + 4096;
            // SAFETY: disjoint pieces of a region the shim gave us; the Ctx page and the
            // stack belong to vCPU v from here on.
            let stack = unsafe {
                (ctx_at as *mut Ctx).write(ctx_of(v));
                core::slice::from_raw_parts_mut(stack_at as *mut u8, STACK_BYTES)
            };
            if let Err(e) = shim.start_vcpu(v, vcpu_main, stack, ctx_at) {
                let _ = writeln!(shim, "SMPTICKER-ERROR VCPU_START {v}: {e:?}");
                return 2;
            }
        }
        let steps = work(ctx_of(0));
        let _ = writeln!(shim, "SMPTICKER done ticks={ticks} steps={steps}");
        0
    }

    xshim_payload::payload_main!(main);
}
