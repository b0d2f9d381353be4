//! Boot-time tests of the payload ABI, in the spirit of XTF: every call, good and bad
//! arguments, TAP output (`ok N - ...` / `not ok N - ...`) and a final verdict line
//! `abi-check: PASS (N tests)` or `abi-check: FAIL (F of N failed)`.
//! Poweroff code = number of failures.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("abi-check is a payload: build it with `cargo xshim build` and run it under the shim");
}

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use xshim_payload::abi::{self, call, Error, Features, MemRegion, Wake, WallClock};
    use xshim_payload::rt::Shim;

    struct Tap<'a> {
        shim: &'a mut Shim,
        n: u32,
        failed: u32,
        skipped: u32,
    }

    impl Tap<'_> {
        fn check(&mut self, ok: bool, what: core::fmt::Arguments) {
            self.n += 1;
            if !ok {
                self.failed += 1;
            }
            let _ = writeln!(self.shim, "{}ok {} - {}", if ok { "" } else { "not " }, self.n, what);
        }
        /// A test that does not apply here: counted, passed, marked `# SKIP` (TAP).
        fn skip(&mut self, what: core::fmt::Arguments, why: &str) {
            self.n += 1;
            self.skipped += 1;
            let _ = writeln!(self.shim, "ok {} - {} # SKIP {}", self.n, what, why);
        }
    }

    const BAD_PTRS: [u64; 4] = [0, 0x10, 0xffff_8000_0000_0000, u64::MAX - 4];

    fn main(shim: &mut Shim) -> u64 {
        let s = *shim;
        let _ = writeln!(shim, "TAP version 13");
        let mut t = Tap { shim, n: 0, failed: 0, skipped: 0 };

        t.check(s.boot.magic == abi::BOOT_MAGIC && s.boot.abi_version == abi::ABI_VERSION, format_args!("boot info magic and ABI version {}", s.boot.abi_version));
        t.check(Features::from_bits(s.boot.features).is_some(), format_args!("feature bits {:#x} are all defined", s.boot.features));
        let v = s.raw(call::VERSION, 0, 0, 0, 0) as u64;
        t.check(v as u32 == abi::ABI_VERSION && (v >> 32) as u32 == s.boot.features, format_args!("VERSION agrees with boot info ({v:#x})"));
        t.check(s.boot.stack_size >= 16 * 1024, format_args!("stack of {} bytes", s.boot.stack_size));

        // Console.
        let msg = b"abi-check: console write\n";
        t.check(s.console_write(msg) == Ok(msg.len() as u64), format_args!("console_write returns its length"));
        t.check(s.console_write(&[]) == Ok(0), format_args!("console_write of 0 bytes"));
        for p in BAD_PTRS {
            let r = s.raw(call::CONSOLE_WRITE, p, 16, 0, 0);
            t.check(r == Error::BadPointer as i64, format_args!("console_write({p:#x}, 16) -> BadPointer ({r})"));
        }
        let r = s.raw(call::CONSOLE_WRITE, msg.as_ptr() as u64, abi::MAX_IO_LEN + 1, 0, 0);
        t.check(r == Error::BadLength as i64 || r == Error::BadPointer as i64, format_args!("console_write of MAX_IO_LEN+1 is refused ({r})"));
        let mut inbuf = [0u8; 64];
        let r = s.console_read(&mut inbuf);
        t.check(matches!(r, Ok(n) if n <= 64), format_args!("console_read does not block ({r:?})"));
        let r = s.raw(call::CONSOLE_READ, 0x10, 64, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("console_read(0x10) -> BadPointer ({r})"));

        // Time.
        let t0 = s.monotonic_ns();
        let mut prev = t0;
        let mut backwards = 0;
        for _ in 0..2000 {
            let now = s.monotonic_ns();
            if now < prev {
                backwards += 1;
            }
            prev = now;
        }
        t.check(backwards == 0, format_args!("monotonic clock never went back in 2000 reads ({backwards})"));
        let start = s.monotonic_ns();
        let wake = s.wait(start + 50_000_000);
        let slept = s.monotonic_ns() - start;
        t.check(wake.contains(Wake::DEADLINE) && slept >= 50_000_000, format_args!("wait(now+50ms) woke by deadline after {slept} ns"));
        t.check(slept < 2_000_000_000, format_args!("wait(now+50ms) did not oversleep ({slept} ns)"));
        let before = s.monotonic_ns();
        let wake = s.wait(0);
        let took = s.monotonic_ns() - before;
        t.check(wake.contains(Wake::DEADLINE) && took < 50_000_000, format_args!("wait(past deadline) returns at once ({took} ns)"));
        let wc = s.wallclock();
        // 2020-01-01T00:00:00Z.
        t.check(matches!(wc, Ok(WallClock { sec, nsec, .. }) if sec > 1_577_836_800 && nsec < 1_000_000_000), format_args!("wallclock is after 2020 ({wc:?})"));
        let r = s.raw(call::WALLCLOCK, 0x10, 0, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("wallclock(0x10) -> BadPointer ({r})"));

        // Command line, with the runner's sentinel.
        let mut buf = [0u8; 512];
        let cmdline = s.cmdline(&mut buf);
        let full = s.raw(call::CMDLINE, 0, 0, 0, 0);
        t.check(full as usize == cmdline.len(), format_args!("cmdline length query ({full}) matches \"{cmdline}\""));
        let sentinel = cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix("sentinel="));
        // A runner passes sentinel=N to prove the command line arrives; run by hand, there is
        // none, and that is not a failure.
        match sentinel {
            Some(v) => t.check(!v.is_empty(), format_args!("cmdline carries sentinel={v}")),
            None => t.skip(format_args!("cmdline carries a sentinel"), "no sentinel= given"),
        }
        let r = s.raw(call::CMDLINE, 0x10, 8, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("cmdline(0x10, 8) -> BadPointer ({r})"));

        // Memory map.
        let mut regions = [MemRegion::default(); 32];
        let total = s.raw(call::MEMMAP, 0, 0, 0, 0);
        let got = s.memmap(&mut regions);
        t.check(total >= 1 && got.len() == total as usize, format_args!("memmap lists {total} regions"));
        let mut sane = true;
        let mut bytes = 0u64;
        for (i, r) in got.iter().enumerate() {
            sane &= r.base % 4096 == 0 && r.len % 4096 == 0 && r.len > 0;
            for o in &got[i + 1..] {
                sane &= r.base + r.len <= o.base || o.base + o.len <= r.base;
            }
            bytes += r.len;
        }
        t.check(sane, format_args!("memmap regions are page-aligned and disjoint ({} KiB)", bytes / 1024));
        let mut rw = true;
        for r in got {
            for addr in [r.base, r.base + r.len - 8] {
                let p = addr as *mut u64;
                // SAFETY: the shim granted this region to the payload; addresses are inside it
                // and 8-byte aligned.
                unsafe {
                    let old = p.read_volatile();
                    p.write_volatile(0x5a5a_1234_dead_beef);
                    rw &= p.read_volatile() == 0x5a5a_1234_dead_beef;
                    p.write_volatile(old);
                }
            }
        }
        t.check(rw, format_args!("first and last word of every region are writable"));
        let r = s.raw(call::MEMMAP, 0x10, 4, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("memmap(0x10, 4) -> BadPointer ({r})"));
        // A buffer pointing into the shim's own memory must be refused.
        let r = s.raw(call::CONSOLE_READ, 0x10_0000, 64, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("console_read into the shim (1 MiB) -> BadPointer ({r})"));

        // The disk calls: bad pointers and lengths are refused before any disk is looked at;
        // with no disk (QEMU, or a guest without `disk=`), NoDevice. abi-check runs without one.
        let r = s.raw(call::BLOCK_INFO, 0, 0x10, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("block_info(0, 0x10) -> BadPointer ({r})"));
        let r = s.raw(call::BLOCK_READ, 0, 0, buf.as_mut_ptr() as u64, 0);
        t.check(r == Error::BadLength as i64, format_args!("block_read of 0 bytes -> BadLength ({r})"));
        let r = s.raw(call::BLOCK_WRITE, 0, 0, 0x10_0000, 512);
        t.check(r == Error::BadPointer as i64, format_args!("block_write from the shim (1 MiB) -> BadPointer ({r})"));
        t.check(s.block_info(7) == Err(Error::NoDevice), format_args!("block_info(7) -> NoDevice"));
        t.check(s.block_flush(0) == Err(Error::NoDevice), format_args!("block_flush(0) without a disk -> NoDevice"));

        // The network calls, likewise: abi-check runs without a vif.
        let r = s.raw(call::NET_INFO, 0, 0x10, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("net_info(0, 0x10) -> BadPointer ({r})"));
        let r = s.raw(call::NET_SEND, 0, buf.as_ptr() as u64, 0, 0);
        t.check(r == Error::BadLength as i64, format_args!("net_send of 0 bytes -> BadLength ({r})"));
        let r = s.raw(call::NET_RECV, 0, 0x10_0000, 1514, 0);
        t.check(r == Error::BadPointer as i64, format_args!("net_recv into the shim (1 MiB) -> BadPointer ({r})"));
        t.check(s.net_info(0).err() == Some(Error::NoDevice), format_args!("net_info(0) without a vif -> NoDevice"));
        t.check(s.net_send(0, &buf[..60]) == Err(Error::NoDevice), format_args!("net_send(0) without a vif -> NoDevice"));

        // Calls that do not exist or take bad arguments.
        // Memory: MEM_INFO, and MEM_DISCARD of the last page of the largest region (it reads
        // as zeros afterwards and can be written again); refused arguments.
        match s.mem_info() {
            Ok(m) => t.check(m.total >= bytes && m.populated <= m.total, format_args!("mem_info: total {} KiB, populated {} KiB, limit {} KiB", m.total >> 10, m.populated >> 10, m.limit >> 10)),
            Err(e) => t.check(false, format_args!("mem_info -> {e:?}")),
        }
        let r = s.raw(call::MEM_INFO, 0x10, 0, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("mem_info(0x10) -> BadPointer ({r})"));
        if let Some(big) = got.iter().max_by_key(|r| r.len) {
            let page = big.base + big.len - 4096;
            let p = page as *mut u64;
            // SAFETY: the last page of a region the shim granted to the payload; nothing
            // else of ours is there.
            unsafe { p.write_volatile(0x0bad_cafe) };
            // SAFETY: as above; no reference into the page is held.
            let given = unsafe { s.mem_discard(page, 4096) };
            // SAFETY: as above.
            let after = unsafe { p.read_volatile() };
            // SAFETY: as above.
            unsafe { p.write_volatile(7) };
            // SAFETY: as above.
            let again = unsafe { p.read_volatile() };
            t.check(given.is_ok() && after == 0 && again == 7, format_args!("mem_discard of a page: {given:?}, reads {after:#x} afterwards, writable again ({again})"));
        }
        let base = got.first().map_or(0, |r| r.base);
        let r = s.raw(call::MEM_DISCARD, base + 8, 4096, 0, 0);
        t.check(r == Error::BadArgument as i64, format_args!("mem_discard of an unaligned range -> BadArgument ({r})"));
        let r = s.raw(call::MEM_DISCARD, base, 0, 0, 0);
        t.check(r == Error::BadLength as i64, format_args!("mem_discard of 0 bytes -> BadLength ({r})"));
        let r = s.raw(call::MEM_DISCARD, 0x80_0000, 4096, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("mem_discard of the payload's own window -> BadPointer ({r})"));
        let r = s.raw(call::MEM_DISCARD, 0x10_0000, 4096, 0, 0);
        t.check(r == Error::BadPointer as i64, format_args!("mem_discard of the shim (1 MiB) -> BadPointer ({r})"));

        // vCPUs: the count, which one this is, and what VCPU_START and WAKE refuse; WAKE of
        // oneself makes the next WAIT return at once.
        let n = s.vcpu_count();
        t.check((1..=abi::MAX_VCPUS).contains(&n), format_args!("vcpu_count -> {n}"));
        let me = s.current_vcpu();
        t.check(me == 0, format_args!("current_vcpu on the entry vCPU -> {me}"));
        let r = s.raw(call::VCPU_START, 0, 0x80_0000, 0x80_1000, 0);
        t.check(r == Error::BadArgument as i64, format_args!("vcpu_start(0) -> BadArgument ({r})"));
        let r = s.raw(call::VCPU_START, n, 0x80_0000, 0x80_1000, 0);
        t.check(r == Error::BadArgument as i64, format_args!("vcpu_start({n}: past the count) -> BadArgument ({r})"));
        let r = s.raw(call::WAKE, n, 0, 0, 0);
        t.check(r == Error::BadArgument as i64, format_args!("wake({n}: past the count) -> BadArgument ({r})"));
        let r = s.raw(call::WAKE, 0, 0, 0, 0);
        let w = s.wait(u64::MAX);
        t.check(r == 0 && w.contains(abi::Wake::WOKEN), format_args!("wake(self) then wait(forever) -> {w:?}"));
        if n > 1 {
            let r = s.raw(call::VCPU_START, 1, 0x10_0000, 0x80_1000, 0);
            t.check(r == Error::BadPointer as i64, format_args!("vcpu_start(1, entry in the shim) -> BadPointer ({r})"));
            let r = s.raw(call::VCPU_START, 1, 0x80_0000, 0x10_1000, 0);
            t.check(r == Error::BadPointer as i64, format_args!("vcpu_start(1, stack in the shim) -> BadPointer ({r})"));
        }

        for nr in [0u64, 25, 999, u64::MAX] {
            let r = s.raw(nr, 0, 0, 0, 0);
            t.check(r == Error::NoSuchCall as i64, format_args!("call {nr:#x} -> NoSuchCall ({r})"));
        }
        let r = s.raw(call::SHUTDOWN, 77, 0, 0, 0);
        t.check(r == Error::BadArgument as i64, format_args!("shutdown(kind 77) -> BadArgument ({r})"));
        let r = s.raw(call::RESUME_NOTIFY, 2, 0, 0, 0);
        t.check(r == Error::BadArgument as i64, format_args!("resume_notify(2) -> BadArgument ({r})"));

        // Resume notification (opt-in) and generation.
        t.check(!s.resume_notify(true), format_args!("resume notification is off by default"));
        t.check(s.resume_notify(false), format_args!("resume notification switches on and off"));
        let g = s.generation();
        t.check(g == s.generation(), format_args!("generation is stable while running ({g})"));

        let (n, failed, skipped) = (t.n, t.failed, t.skipped);
        if failed == 0 && skipped > 0 {
            let _ = writeln!(shim, "1..{n}\nabi-check: PASS ({n} tests, {skipped} skipped)");
        } else if failed == 0 {
            let _ = writeln!(shim, "1..{n}\nabi-check: PASS ({n} tests)");
        } else {
            let _ = writeln!(shim, "1..{n}\nabi-check: FAIL ({failed} of {n} failed)");
        }
        failed as u64
    }
    xshim_payload::payload_main!(main);
}
