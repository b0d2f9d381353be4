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
    use xshim_payload::abi::{Error, MemRegion, MAX_IO_LEN};
    use xshim_payload::journal_model::{block_of, check, decode, encode, Found};
    use xshim_payload::rt::Shim;

    fn arg(cmdline: &str, key: &str) -> Option<u64> {
        cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
    }

    /// Reads records `lo..=hi` (at most `ring` of them) from the blocks they live in, in large
    /// calls; returns (records intact before the first bad one, the first bad one).
    fn verify(shim: &Shim, dev: u32, bs: usize, ring: u64, lo: u64, hi: u64, buf: &mut [u8]) -> Result<(u64, Option<(u64, &'static str)>), Error> {
        let per_call = (buf.len() / bs) as u64;
        let mut seq = lo;
        while seq <= hi {
            let first = block_of(seq, ring);
            // Contiguous blocks: up to the ring's end.
            let n = per_call.min(hi - seq + 1).min(ring - first + 1);
            let chunk = &mut buf[..n as usize * bs];
            shim.block_read(dev, first * bs as u64, chunk)?;
            for k in 0..n {
                let found = check(seq + k, first + k, &chunk[k as usize * bs..(k as usize + 1) * bs]);
                match found {
                    Found::Good => {}
                    Found::Empty => return Ok((seq + k - lo, Some((seq + k, "missing")))),
                    Found::Bad(why) => return Ok((seq + k - lo, Some((seq + k, why)))),
                }
            }
            seq += n;
        }
        Ok((hi + 1 - lo, None))
    }

    /// The journal's last record: blocks from 1 on hold records in order until the first empty
    /// block, or the first record of an older lap of the ring. A damaged block ends the scan
    /// and is reported.
    fn find_last(shim: &Shim, dev: u32, bs: usize, ring: u64, buf: &mut [u8]) -> Result<(u64, Option<(u64, &'static str)>), Error> {
        let per_call = (buf.len() / bs) as u64;
        let mut last = 0;
        let mut block = 1;
        while block <= ring {
            let n = per_call.min(ring - block + 1);
            let chunk = &mut buf[..n as usize * bs];
            shim.block_read(dev, block * bs as u64, chunk)?;
            for k in 0..n {
                let data = &chunk[k as usize * bs..(k as usize + 1) * bs];
                match decode(block + k, data) {
                    Some(seq) if last == 0 || seq == last + 1 => last = seq,
                    // An older lap: the ring wrapped here.
                    Some(_) => return Ok((last, None)),
                    // Empty: the journal ends here; anything else is a damaged record.
                    None => {
                        let bad = match check(last + 1, block + k, data) {
                            Found::Bad(why) => Some((last + 1, why)),
                            Found::Empty | Found::Good => None,
                        };
                        return Ok((last, bad));
                    }
                }
            }
            block += n;
        }
        Ok((last, None))
    }

    /// Bytes each throughput measurement moves.
    const BENCH_BYTES: u64 = 16 << 20;
    /// 4 KiB write + flush pairs timed.
    const BENCH_SYNC_WRITES: usize = 200;

    /// Sequential throughput in MB/s (10^6 bytes) of `BENCH_BYTES` moved in `chunk`-byte calls.
    fn throughput(shim: &Shim, dev: u32, write: bool, chunk: usize, buf: &mut [u8]) -> Result<u64, Error> {
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
        // The ring: a whole number of batches, so that no write crosses its end.
        let ring = arg(cmdline, "ring").unwrap_or(max_records).clamp(batch, max_records) / batch * batch;
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
        let _ = writeln!(shim, "JOURNAL start block_size {bs} capacity {max_records} ring {ring} records batch {batch} flush {flush_every} flags {:#x}", info.flags);

        // What is on the disk: the last record, then every record the ring still holds.
        let scanned = find_last(shim, dev, bs, ring, buf).and_then(|(last, bad)| match bad {
            Some(b) => Ok((last, last, Some(b))),
            None if last <= ring => Ok((last, last, None)),
            None => verify(shim, dev, bs, ring, last - ring + 1, last, buf).map(|(n, bad)| (last, n, bad)),
        });
        let (found, bad) = match scanned {
            Ok((last, n, bad)) => {
                let _ = match bad {
                    None => writeln!(shim, "JOURNAL verified {n} records (last {last}), first bad: none"),
                    Some((s, why)) => writeln!(shim, "JOURNAL verified {n} records (last {last}), first bad: seq {s} ({why})"),
                };
                (last, bad)
            }
            Err(e) => {
                let _ = writeln!(shim, "JOURNAL-ERROR reading the journal: {e:?}");
                return 4;
            }
        };
        if verify_only {
            return if bad.is_none() { 0 } else { 1 };
        }

        let mut acked = found;
        let mut flushed = found;
        let mut generation = shim.generation();
        // Without a ring the journal ends when the disk is full.
        let end = if ring < max_records { records } else { records.min(max_records) };
        while acked < end {
            // Back on a batch boundary after a start in the middle of one.
            let n = (batch - acked % batch).min(end - acked);
            let at = block_of(acked + 1, ring);
            for k in 0..n {
                encode(acked + 1 + k, at + k, &mut buf[k as usize * bs..(k as usize + 1) * bs]);
            }
            if let Err(e) = shim.block_write(dev, at * bs as u64, &buf[..n as usize * bs]) {
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
                match verify(shim, dev, bs, ring, acked.saturating_sub(ring) + 1, acked, buf) {
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
