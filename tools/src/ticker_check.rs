//! The continuity check for `ticker`'s console output: TICK numbers start at 1 and continue
//! without restart, gap or duplicate (across every log the guest wrote to), the monotonic
//! clock never goes back, and every checksum is what the deterministic workload predicts.
use xshim_payload::ticker_model::{checksum, fill, mutate, TICKER_BYTES};

#[derive(Debug, Default)]
pub struct TickReport {
    pub ticks: usize,
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
            format!("{} ticks (1..{}), checksums match, clock monotonic", self.ticks, self.last)
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
        if w.next() != Some("TICK") {
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
}
