//! The continuity check for `ticker`'s console output: TICK numbers start at 1 and continue
//! without restart, gap or duplicate (across every log the guest wrote to), the monotonic
//! clock never goes back, and every checksum is what the deterministic workload predicts.
use xshim_payload::ticker_model::{checksum, fill, mutate, TICKER_BYTES};

#[derive(Debug, Default)]
pub struct TickReport {
    pub ticks: usize,
    /// `GROW` lines (the `grow=` option): each checked every page touched before.
    pub grows: usize,
    pub last: u64,
    pub starts: usize,
    pub problems: Vec<String>,
}

impl TickReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.ticks > 0
    }
    pub fn summary(&self) -> String {
        if self.ok() {
            let grown = if self.grows > 0 { format!(", {} growth checks with nothing lost", self.grows) } else { String::new() };
            format!("{} ticks (1..{}), checksums match, clock monotonic{grown}", self.ticks, self.last)
        } else if self.ticks == 0 {
            "no TICK lines".into()
        } else {
            format!("{} ticks; {}", self.ticks, self.problems.iter().take(4).cloned().collect::<Vec<_>>().join("; "))
        }
    }
}

/// The checksum of TICK 1..=n.
pub fn expected_checksums(n: u64) -> Vec<u64> {
    let mut words = vec![0u64; TICKER_BYTES / 8];
    fill(&mut words);
    (1..=n)
        .map(|k| {
            mutate(&mut words, k);
            checksum(&words)
        })
        .collect()
}

/// Largest gap allowed between consecutive ticks on the payload's clock (the clock stands
/// still while the guest is suspended, so a bigger gap means time was lost or doubled).
const MAX_TICK_GAP_NS: u64 = 5_000_000_000;

pub fn check<'a>(lines: impl Iterator<Item = &'a str>) -> TickReport {
    let mut r = TickReport::default();
    let mut ticks: Vec<(u64, u64, u64)> = Vec::new();
    for line in lines {
        let line = line.trim();
        if line.starts_with("TICKER start") {
            r.starts += 1;
        }
        let mut w = line.split_ascii_whitespace();
        let first = w.next();
        if first == Some("GROW") {
            r.grows += 1;
            let bad = line.split_ascii_whitespace().find_map(|f| f.strip_prefix("bad=")?.parse::<u64>().ok());
            match bad {
                Some(0) => {}
                Some(b) => r.problems.push(format!("{line:?}: {b} words of grown memory lost or not zero after a discard")),
                None => r.problems.push(format!("unparseable line {line:?}")),
            }
            continue;
        }
        if first != Some("TICK") {
            continue;
        }
        let parsed = (|| Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?, u64::from_str_radix(w.next()?, 16).ok()?)))();
        match parsed {
            Some(t) => ticks.push(t),
            None => r.problems.push(format!("unparseable line {line:?}")),
        }
    }
    if r.starts > 1 {
        r.problems.push(format!("the payload started {} times (restart)", r.starts));
    }
    ticks.sort_by_key(|t| t.0);
    r.ticks = ticks.len();
    let Some(&(last, _, _)) = ticks.last() else { return r };
    r.last = last;
    let sums = expected_checksums(last.min(100_000));
    let mut prev: Option<(u64, u64)> = None;
    for &(n, mono, sum) in &ticks {
        match prev {
            None if n != 1 => r.problems.push(format!("first TICK is {n}, not 1")),
            Some((pn, _)) if n == pn => r.problems.push(format!("TICK {n} appears twice")),
            Some((pn, _)) if n != pn + 1 => r.problems.push(format!("gap: TICK {pn} then TICK {n}")),
            _ => {}
        }
        if let Some((pn, pm)) = prev {
            if mono < pm {
                r.problems.push(format!("clock went back: TICK {pn} at {pm} ns, TICK {n} at {mono} ns"));
            } else if mono - pm > MAX_TICK_GAP_NS && n == pn + 1 {
                r.problems.push(format!("{} s between TICK {pn} and TICK {n}", (mono - pm) / 1_000_000_000));
            }
        }
        if let Some(&want) = sums.get(n as usize - 1) {
            if want != sum && n >= 1 {
                r.problems.push(format!("TICK {n} checksum {sum:016x}, expected {want:016x}: memory was lost or corrupted"));
            }
        }
        prev = Some((n, mono));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: u64, skip: Option<u64>, dup: Option<u64>, corrupt: Option<u64>) -> String {
        let sums = expected_checksums(n);
        let mut s = String::from("TICKER start bytes=4194304\n");
        for k in 1..=n {
            if Some(k) == skip {
                continue;
            }
            let sum = if Some(k) == corrupt { sums[k as usize - 1] ^ 1 } else { sums[k as usize - 1] };
            s.push_str(&format!("TICK {k} {} {sum:016x}\n", k * 1_000_000_000));
            if Some(k) == dup {
                s.push_str(&format!("TICK {k} {} {sum:016x}\n", k * 1_000_000_000));
            }
        }
        s
    }

    #[test]
    fn a_clean_run_passes_and_every_fault_is_caught() {
        assert!(check(lines(6, None, None, None).lines()).ok());
        assert!(check(lines(6, Some(3), None, None).lines()).problems[0].contains("gap"));
        assert!(check(lines(6, None, Some(2), None).lines()).problems[0].contains("twice"));
        assert!(check(lines(6, None, None, Some(4)).lines()).problems[0].contains("checksum"));
        let restarted = lines(3, None, None, None) + &lines(2, None, None, None);
        assert!(!check(restarted.lines()).ok());
        assert!(!check("nothing here".lines()).ok());
        println!("checked: clean, gap, duplicate, corrupted checksum, restart, empty");
    }

    #[test]
    fn growth_checks_are_counted_and_losses_caught() {
        let good = lines(3, None, None, None) + "GROW 1 touched=4096 populated=8192 limit=131072 discarded=0 bad=0\n";
        let r = check(good.lines());
        assert!(r.ok() && r.grows == 1, "{r:?}");
        let lost = lines(3, None, None, None) + "GROW 2 touched=4096 populated=8192 limit=131072 discarded=0 bad=3\n";
        assert!(check(lost.lines()).problems[0].contains("3 words"));
        let garbled = lines(3, None, None, None) + "GROW 2 touched=4096\n";
        assert!(!check(garbled.lines()).ok());
        println!("checked: GROW lines counted, a loss and a garbled line caught");
    }
}

/// The monotonic times (ns) of the TICK lines, in order.
pub fn tick_times<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u64> {
    lines
        .filter_map(|l| {
            let mut w = l.trim().split_ascii_whitespace();
            (w.next() == Some("TICK")).then_some(())?;
            w.next()?;
            w.next()?.parse().ok()
        })
        .collect()
}

/// Checks that ticks come `interval` apart (the ticker sleeps until start + n s): every gap
/// within [0.9, 1.25] intervals. Returns a summary, or what is wrong.
pub fn check_spacing(times: &[u64], interval_ns: u64) -> Result<String, String> {
    if times.len() < 2 {
        return Err(format!("{} TICK lines: need 2 to see the spacing", times.len()));
    }
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    let (lo, hi) = (interval_ns * 9 / 10, interval_ns * 5 / 4);
    let ms: Vec<String> = gaps.iter().map(|g| format!("{}", g / 1_000_000)).collect();
    if gaps.iter().all(|g| (lo..=hi).contains(g)) {
        Ok(format!("ticks {} ms apart", ms.join("/")))
    } else {
        Err(format!("ticks {} ms apart, want {}..{} ms", ms.join("/"), lo / 1_000_000, hi / 1_000_000))
    }
}

#[cfg(test)]
mod spacing_tests {
    use super::*;

    #[test]
    fn spacing_is_checked_both_ways() {
        let ok = ["TICK 1 1000000000 0", "TICK 2 2001000000 0", "TICK 3 3000000000 0"];
        let t = tick_times(ok.iter().copied());
        assert_eq!(t, [1_000_000_000, 2_001_000_000, 3_000_000_000]);
        assert!(check_spacing(&t, 1_000_000_000).is_ok());
        // What kvm_pvm produced: 1.33 s apart.
        let slow = [4_675_741_071u64, 6_003_586_456, 7_327_986_338];
        let e = check_spacing(&slow, 1_000_000_000).unwrap_err();
        assert!(e.contains("1327/1324"), "{e}");
        assert!(check_spacing(&slow[..1], 1_000_000_000).is_err());
        println!("checked: 1 s spacing passes, {e} fails");
    }
}
