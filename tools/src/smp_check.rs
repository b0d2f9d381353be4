//! The continuity check for `smp-ticker`'s console output (payload/src/smp_model.rs says
//! what the lines mean): per vCPU, VTICK steps only grow, each a multiple of the tick's
//! step count, and each checksum is what replaying that vCPU's steps gives; SMP lines come
//! as ticks 1, 2, 3, ... once, and each shows a counter equal to the sum of the steps and a
//! shared sum equal to every step's contribution (nothing lost under the lock).
use std::collections::BTreeMap;
use xshim_payload::smp_model::{checksum, expected_sum, fill, step, REGION_WORDS, STEPS_PER_TICK};

#[derive(Debug, Default)]
pub struct SmpReport {
    /// VTICK lines checked, per vCPU.
    pub vticks: BTreeMap<u64, usize>,
    /// The last step seen per vCPU.
    pub last_step: BTreeMap<u64, u64>,
    pub smp_lines: usize,
    pub starts: usize,
    pub problems: Vec<String>,
}

impl SmpReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.smp_lines > 0 && !self.vticks.is_empty()
    }
    pub fn summary(&self) -> String {
        let per: Vec<String> = self.vticks.iter().map(|(v, n)| format!("vCPU {v}: {n} ticks to step {}", self.last_step.get(v).copied().unwrap_or(0))).collect();
        if self.ok() {
            format!("{} SMP lines consistent; {}; checksums match", self.smp_lines, per.join(", "))
        } else {
            format!("{} SMP lines; {}; {}", self.smp_lines, per.join(", "), self.problems.iter().take(4).cloned().collect::<Vec<_>>().join("; "))
        }
    }
}

/// Replays one vCPU's region up to each step asked for, in increasing order.
struct Replay {
    vcpu: u64,
    words: Vec<u64>,
    at: u64,
}

impl Replay {
    fn new(vcpu: u64) -> Replay {
        let mut words = vec![0u64; REGION_WORDS];
        fill(vcpu, &mut words);
        Replay { vcpu, words, at: 0 }
    }
    fn checksum_at(&mut self, s: u64) -> u64 {
        while self.at < s {
            self.at += 1;
            step(self.vcpu, self.at, &mut self.words);
        }
        checksum(&self.words)
    }
}

/// A replay longer than this many steps per vCPU is not checked (a spinning run's steps).
const MAX_REPLAY: u64 = 2_000_000;

pub fn check<'a>(lines: impl Iterator<Item = &'a str>) -> SmpReport {
    let mut r = SmpReport::default();
    let mut replays: BTreeMap<u64, Replay> = BTreeMap::new();
    let mut next_tick = 1u64;
    for line in lines {
        let line = line.trim();
        if line.starts_with("SMPTICKER start") {
            r.starts += 1;
        }
        let mut w = line.split_ascii_whitespace();
        match w.next() {
            Some("VTICK") => {
                let nums: Vec<Option<u64>> = vec![w.next().and_then(|x| x.parse().ok()), w.next().and_then(|x| x.parse().ok()), w.next().and_then(|x| u64::from_str_radix(x, 16).ok())];
                let (Some(v), Some(s), Some(sum)) = (nums[0], nums[1], nums[2]) else {
                    r.problems.push(format!("malformed line: {line}"));
                    continue;
                };
                if s % STEPS_PER_TICK != 0 {
                    r.problems.push(format!("vCPU {v} step {s} is not a multiple of {STEPS_PER_TICK}"));
                }
                if let Some(&last) = r.last_step.get(&v) {
                    if s <= last {
                        r.problems.push(format!("vCPU {v} step {s} after step {last}: went back or repeated (a restart or a lost suspend?)"));
                        continue;
                    }
                }
                r.last_step.insert(v, s);
                *r.vticks.entry(v).or_default() += 1;
                if s <= MAX_REPLAY {
                    let want = replays.entry(v).or_insert_with(|| Replay::new(v)).checksum_at(s);
                    if want != sum {
                        r.problems.push(format!("vCPU {v} step {s} checksum {sum:016x}, expected {want:016x}: its memory was lost or corrupted"));
                    }
                }
            }
            Some("SMP") => {
                r.smp_lines += 1;
                let tick: Option<u64> = w.next().and_then(|x| x.parse().ok());
                let field = |k: &str| line.split_ascii_whitespace().find_map(|f| f.strip_prefix(k).map(str::to_string));
                let counter: Option<u64> = field("counter=").and_then(|x| x.parse().ok());
                let sum: Option<u64> = field("sum=").and_then(|x| u64::from_str_radix(&x, 16).ok());
                // Every number must parse: a line with another one's text run into it is
                // malformed, not a lost update.
                let steps: Option<Vec<u64>> = field("steps=").and_then(|x| x.split(',').map(|n| n.parse().ok()).collect());
                let (Some(tick), Some(counter), Some(sum), Some(steps)) = (tick, counter, sum, steps) else {
                    r.problems.push(format!("malformed line: {line}"));
                    continue;
                };
                if tick != next_tick {
                    r.problems.push(format!("SMP tick {tick} where {next_tick} was due"));
                }
                next_tick = tick + 1;
                let total: u64 = steps.iter().sum();
                if counter != total {
                    r.problems.push(format!("SMP {tick}: counter {counter} but the steps add up to {total}: an update under the lock was lost"));
                }
                if sum != expected_sum(&steps) {
                    r.problems.push(format!("SMP {tick}: shared sum {sum:016x} is not the sum of the steps' contributions: an update under the lock was lost or torn"));
                }
            }
            _ => {}
        }
    }
    if r.starts > 1 {
        r.problems.push(format!("the payload started {} times", r.starts));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use xshim_payload::smp_model::Shared;

    /// The lines two vCPUs would print over `ticks` ticks (64 steps a tick each).
    fn lines(ticks: u64, skip_vtick: Option<(u64, u64)>, lose: Option<u64>) -> String {
        let mut out = String::from("SMPTICKER start vcpus=2\n");
        let mut regions: Vec<Vec<u64>> = (0..2).map(|v| { let mut w = vec![0; REGION_WORDS]; fill(v, &mut w); w }).collect();
        let mut shared = Shared::new();
        for t in 1..=ticks {
            for v in 0..2u64 {
                for k in 1..=STEPS_PER_TICK {
                    let s = (t - 1) * STEPS_PER_TICK + k;
                    step(v, s, &mut regions[v as usize]);
                    if lose != Some(t) || v != 1 || k != 1 {
                        shared.record(v, s);
                    } else {
                        shared.steps[1] = s; // the update's other halves lost
                    }
                }
                if skip_vtick != Some((v, t)) {
                    out.push_str(&format!("VTICK {v} {} {:016x}\n", t * STEPS_PER_TICK, checksum(&regions[v as usize])));
                }
            }
            let st: Vec<String> = shared.steps.iter().map(|s| s.to_string()).collect();
            out.push_str(&format!("SMP {t} counter={} sum={:016x} steps={}\n", shared.counter, shared.sum, st.join(",")));
        }
        out
    }

    #[test]
    fn a_line_with_another_run_into_it_is_malformed_not_a_lost_update() {
        // As the lab saw it once: the SMP line's newline written apart, a VTICK line between.
        let r = check(["SMP 1 counter=3 sum=0000000000000001 steps=1,2VTICK 1 64 0"].into_iter());
        assert!(r.problems.iter().any(|p| p.starts_with("malformed line")) && !r.problems.iter().any(|p| p.contains("lost")), "{:?}", r.problems);
    }

    #[test]
    fn a_clean_run_passes_and_a_lost_update_is_caught() {
        let r = check(lines(3, None, None).lines());
        assert!(r.ok(), "{}", r.summary());
        assert_eq!(r.vticks.get(&1), Some(&3));
        // A missing VTICK line is not an error (a tick may print late), but a repeated one is.
        assert!(check(lines(3, Some((1, 2)), None).lines()).ok());
        let mut dup = lines(2, None, None);
        dup.push_str(&dup.lines().find(|l| l.starts_with("VTICK 1")).unwrap().to_string());
        assert!(check(dup.lines()).problems.iter().any(|p| p.contains("went back or repeated")));
        let lost = check(lines(3, None, Some(2)).lines());
        assert!(lost.problems.iter().any(|p| p.contains("lost")), "{:?}", lost.problems);
        let clean = lines(2, None, None);
        let victim = clean.lines().find(|l| l.starts_with("VTICK 1 64 ")).unwrap().to_string();
        let corrupt = clean.replacen(&victim, &format!("VTICK 1 64 {:016x}", u64::from_str_radix(&victim[11..], 16).unwrap() ^ 1), 1);
        assert!(check(corrupt.lines()).problems.iter().any(|p| p.contains("checksum")));
        println!("checked: clean, a late tick, a repeated tick, a lost update, a corrupted checksum");
    }
}
