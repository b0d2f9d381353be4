//! Appends deterministic records (`journal_model`) to disk 0 with BLOCK_WRITE, a BLOCK_FLUSH
//! every `flush` records, and prints `JOURNAL ack <seq>` once the write of every record up to
//! `seq` has returned. At start it reads its whole journal back (`JOURNAL verified N records,
//! first bad: ...`) and goes on after the last record; after every resume in a new domain it
//! reads back everything acknowledged so far (`JOURNAL readback ...`).
//! Command line: `records=N` stops after record N (default: forever), `batch=B` records per
//! write (default 1; 88 make one 44 KiB request of 512-byte blocks, more make several),
//! `flush=F` (default 8), `interval_ms=T` between writes (default 20), `dev=D` (default 0),
//! `verify=1` reads the journal back, prints the verdict and powers off. `bench=1` instead
//! measures the disk (`cargo xshim bench disk`: the same measurements as the Linux guest's
//! tools/lab/xdiskbench.c) and prints `BENCH <name> <value>` lines.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("journal is a payload: build it with `cargo xshim build` and run it under the shim");
}

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use xshim_payload::abi::{MemRegion, MAX_IO_LEN};
    use xshim_payload::journal_model::{check, encode, Found};
    use xshim_payload::rt::Shim;

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    /// Reads records 1.. in large calls; returns (records intact, the first bad one). Stops
    /// at the first empty block, or at `upto`.
    fn scan(shim: &Shim, dev: u32, bs: usize, max_records: u64, upto: Option<u64>, buf: &mut [u8]) -> Result<(u64, Option<(u64, &'static str)>), xshim_payload::abi::Error> {
        let per_call = (buf.len() / bs) as u64;
        let last = upto.unwrap_or(max_records).min(max_records);
        let mut seq = 1;
        while seq <= last {
            let n = per_call.min(last - seq + 1);
            let chunk = &mut buf[..n as usize * bs];
            shim.block_read(dev, seq * bs as u64, chunk)?;
            for k in 0..n {
                let s = seq + k;
                match check(s, &chunk[k as usize * bs..(k as usize + 1) * bs]) {
                    Found::Good => {}
                    Found::Empty if upto.is_none() => return Ok((s - 1, None)),
                    Found::Empty => return Ok((s - 1, Some((s, "missing")))),
                    Found::Bad(why) => return Ok((s - 1, Some((s, why)))),
                }
            }
            seq += n;
        }
        Ok((last, None))
    }

    /// Bytes each throughput measurement moves.
    const BENCH_BYTES: u64 = 16 << 20;
    /// 4 KiB write + flush pairs timed.
    const BENCH_SYNC_WRITES: usize = 200;

    /// Sequential throughput in MB/s (10^6 bytes) of `BENCH_BYTES` moved in `chunk`-byte calls.
    fn throughput(shim: &Shim, dev: u32, write: bool, chunk: usize, buf: &mut [u8]) -> Result<u64, xshim_payload::abi::Error> {
        let t0 = shim.monotonic_ns();
        let mut off = 0;
        while off < BENCH_BYTES {
            if write {
                shim.block_write(dev, off, &buf[..chunk])?;
            } else {
                shim.block_read(dev, off, &mut buf[..chunk])?;
            }
            off += chunk as u64;
        }
        let ns = (shim.monotonic_ns() - t0).max(1);
        Ok(off * 1000 / ns)
    }

    fn bench(shim: &mut Shim, dev: u32, capacity: u64, buf: &mut [u8]) -> u64 {
        if capacity < BENCH_BYTES + (4 << 20) {
            let _ = writeln!(shim, "BENCH-ERROR the disk is smaller than {} MiB", (BENCH_BYTES >> 20) + 4);
            return 2;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7);
        }
        for (name, write, chunk) in [("seq-write-44k", true, 44 << 10), ("seq-write-1m", true, 1 << 20), ("seq-read-44k", false, 44 << 10), ("seq-read-1m", false, 1 << 20)] {
            match throughput(shim, dev, write, chunk, buf) {
                Ok(mbs) => {
                    let _ = writeln!(shim, "BENCH {name} {mbs} MB/s");
                }
                Err(e) => {
                    let _ = writeln!(shim, "BENCH-ERROR {name}: {e:?}");
                    return 4;
                }
            }
        }
        let mut lat = [0u64; BENCH_SYNC_WRITES];
        for (i, l) in lat.iter_mut().enumerate() {
            let off = BENCH_BYTES + (i as u64 % 1024) * 4096;
            let t0 = shim.monotonic_ns();
            if let Err(e) = shim.block_write(dev, off, &buf[..4096]).and_then(|_| shim.block_flush(dev)) {
                let _ = writeln!(shim, "BENCH-ERROR write+flush: {e:?}");
                return 4;
            }
            *l = shim.monotonic_ns() - t0;
        }
        lat.sort_unstable();
        let _ = writeln!(shim, "BENCH write-flush-4k-median {} us", lat[BENCH_SYNC_WRITES / 2] / 1000);
        let _ = writeln!(shim, "BENCH write-flush-4k-p99 {} us", lat[BENCH_SYNC_WRITES * 99 / 100] / 1000);
        let _ = writeln!(shim, "BENCH done");
        0
    }

    fn main(shim: &mut Shim) -> u64 {
        let mut line = [0u8; 256];
        let cmdline = shim.cmdline(&mut line);
        let records = arg(cmdline, "records").unwrap_or(u64::MAX);
        let flush_every = arg(cmdline, "flush").unwrap_or(8).max(1);
        let interval_ms = arg(cmdline, "interval_ms").unwrap_or(20);
        let dev = arg(cmdline, "dev").unwrap_or(0) as u32;
        let verify_only = arg(cmdline, "verify").unwrap_or(0) != 0;
        let info = match shim.block_info(dev) {
            Ok(i) => i,
            Err(e) => {
                let _ = writeln!(shim, "JOURNAL-ERROR no disk {dev}: {e:?}");
                return 3;
            }
        };
        let bs = info.block_size as usize;
        let max_records = info.capacity_bytes / bs as u64 - 1;
        let batch = arg(cmdline, "batch").unwrap_or(1).clamp(1, MAX_IO_LEN / bs as u64);
        // One buffer of MAX_IO_LEN from the payload's free RAM.
        let mut regions = [MemRegion::default(); 16];
        let Some(region) = shim.memmap(&mut regions).iter().find(|r| r.len >= MAX_IO_LEN).copied() else {
            let _ = writeln!(shim, "JOURNAL-ERROR no memory region of {MAX_IO_LEN} bytes");
            return 2;
        };
        // SAFETY: the shim gave us this region for our exclusive use, identity-mapped.
        let buf = unsafe { core::slice::from_raw_parts_mut(region.base as *mut u8, MAX_IO_LEN as usize) };
        if arg(cmdline, "bench").unwrap_or(0) != 0 {
            return bench(shim, dev, info.capacity_bytes, buf);
        }
        let _ = writeln!(shim, "JOURNAL start block_size {bs} capacity {max_records} records batch {batch} flush {flush_every} flags {:#x}", info.flags);

        let (found, bad) = match scan(shim, dev, bs, max_records, None, buf) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(shim, "JOURNAL-ERROR reading the journal: {e:?}");
                return 4;
            }
        };
        match bad {
            None => {
                let _ = writeln!(shim, "JOURNAL verified {found} records, first bad: none");
            }
            Some((s, why)) => {
                let _ = writeln!(shim, "JOURNAL verified {found} records, first bad: seq {s} ({why})");
            }
        }
        if verify_only {
            return if bad.is_none() { 0 } else { 1 };
        }

        let mut acked = found;
        let mut flushed = found;
        let mut generation = shim.generation();
        while acked < records.min(max_records) {
            let n = batch.min(records.min(max_records) - acked);
            for k in 0..n {
                encode(acked + 1 + k, &mut buf[k as usize * bs..(k as usize + 1) * bs]);
            }
            if let Err(e) = shim.block_write(dev, (acked + 1) * bs as u64, &buf[..n as usize * bs]) {
                let _ = writeln!(shim, "JOURNAL-ERROR write of records {}..={}: {e:?}", acked + 1, acked + n);
                return 4;
            }
            acked += n;
            let _ = writeln!(shim, "JOURNAL ack {acked}");
            if acked - flushed >= flush_every {
                if let Err(e) = shim.block_flush(dev) {
                    let _ = writeln!(shim, "JOURNAL-ERROR flush at {acked}: {e:?}");
                    return 4;
                }
                flushed = acked;
                let _ = writeln!(shim, "JOURNAL flush {acked}");
            }
            // Resumed in a new domain (restore, migration): everything acknowledged must
            // read back from the new backend.
            let g = shim.generation();
            if g != generation {
                generation = g;
                match scan(shim, dev, bs, max_records, Some(acked), buf) {
                    Ok((n, None)) => {
                        let _ = writeln!(shim, "JOURNAL readback generation {g}: {n} records intact");
                    }
                    Ok((_, Some((s, why)))) => {
                        let _ = writeln!(shim, "JOURNAL readback generation {g}: FAIL at seq {s} ({why})");
                        return 1;
                    }
                    Err(e) => {
                        let _ = writeln!(shim, "JOURNAL-ERROR readback: {e:?}");
                        return 4;
                    }
                }
            }
            if interval_ms > 0 {
                shim.sleep_until(shim.monotonic_ns() + interval_ms * 1_000_000);
            }
        }
        let _ = shim.block_flush(dev);
        let _ = writeln!(shim, "JOURNAL done {acked}");
        0
    }
    xshim_payload::payload_main!(main);
}
