//! The check of the `journal` payload's console, with the shim's own block log lines: every
//! acknowledgement once (a call returned exactly once), no error, every read-back after a
//! resume intact, and how many requests were in flight at a suspend and sent again after it.
//! (The disk image itself is checked in dom0 by tools/lab/journal-check.py.)
use std::collections::BTreeSet;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct JournalReport {
    /// `JOURNAL ack` lines, and the highest.
    pub acks: usize,
    pub last_ack: u64,
    /// Records the journal found intact at its start (first boot: 0).
    pub verified_at_start: Option<u64>,
    pub flushes: usize,
    /// `JOURNAL readback` lines that found every record intact.
    pub readbacks: usize,
    /// Requests in flight at a suspend, and sent again in the new domain (the shim's log).
    pub in_flight_at_suspend: u64,
    pub sent_again: u64,
    pub problems: Vec<String>,
}

impl JournalReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.acks > 0
    }

    pub fn summary(&self) -> String {
        let facts = format!(
            "{} acknowledgements (last {}), {} flushes, {} read-backs after a resume intact, {} requests in flight at suspends, {} sent again",
            self.acks, self.last_ack, self.flushes, self.readbacks, self.in_flight_at_suspend, self.sent_again
        );
        if self.ok() {
            facts
        } else if self.acks == 0 && self.problems.is_empty() {
            "no JOURNAL ack lines".into()
        } else {
            format!("{facts}; {}", self.problems.iter().take(4).cloned().collect::<Vec<_>>().join("; "))
        }
    }
}

fn number_after(line: &str, prefix: &str) -> Option<u64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The number just before `suffix` in `line`.
fn number_before(line: &str, suffix: &str) -> Option<u64> {
    line[..line.find(suffix)?].split_whitespace().last()?.parse().ok()
}

pub fn check<'a>(lines: impl IntoIterator<Item = &'a str>) -> JournalReport {
    let mut r = JournalReport::default();
    let mut seen = BTreeSet::new();
    for line in lines {
        let line = line.trim_end_matches('\r');
        if let Some(n) = number_after(line, "JOURNAL ack ") {
            r.acks += 1;
            r.last_ack = r.last_ack.max(n);
            if !seen.insert(n) {
                r.problems.push(format!("record {n} acknowledged twice"));
            }
        } else if line.contains("JOURNAL flush ") {
            r.flushes += 1;
        } else if let Some(n) = number_after(line, "JOURNAL verified ") {
            if r.verified_at_start.is_none() {
                r.verified_at_start = Some(n);
            }
            if !line.contains("first bad: none") {
                r.problems.push(line.trim().to_string());
            }
        } else if line.contains("JOURNAL readback ") {
            if line.contains("records intact") {
                r.readbacks += 1;
            } else {
                r.problems.push(line.trim().to_string());
            }
        } else if line.contains("JOURNAL-ERROR") {
            r.problems.push(line.trim().to_string());
        } else if let Some(n) = number_before(line, " request(s) in flight at the suspend") {
            r.in_flight_at_suspend += n;
        } else if let Some(n) = number_before(line, " request(s) sent again") {
            r.sent_again += n;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_run_with_replays_is_counted() {
        let log = "JOURNAL start block_size 512 capacity 131071 records batch 176 flush 8 flags 0x2\n\
                   JOURNAL verified 0 records, first bad: none\n\
                   JOURNAL ack 176\nJOURNAL ack 352\nJOURNAL flush 352\n\
                   xshim: info: block device/vbd/51712: 2 request(s) in flight at the suspend: sent again after it if the domain is new\n\
                   xshim: info: block device/vbd/51712: reconnected to /local/domain/0/backend/vbd/9/51712 (64 MiB) after 712 ms, 2 request(s) sent again\n\
                   JOURNAL ack 528\nJOURNAL readback generation 1: 528 records intact\n";
        let r = check(log.lines());
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.acks, r.last_ack, r.flushes, r.readbacks, r.in_flight_at_suspend, r.sent_again, r.verified_at_start), (3, 528, 1, 1, 2, 2, Some(0)));
    }

    #[test]
    fn a_second_acknowledgement_an_error_or_a_bad_readback_fails() {
        for (bad, why) in [
            ("JOURNAL ack 1\nJOURNAL ack 1\n", "acknowledged twice"),
            ("JOURNAL ack 1\nJOURNAL-ERROR write of records 2..=2: Io\n", "JOURNAL-ERROR"),
            ("JOURNAL ack 1\nJOURNAL readback generation 2: FAIL at seq 1 (missing)\n", "FAIL at seq 1"),
            ("JOURNAL verified 3 records, first bad: seq 4 (checksum mismatch)\nJOURNAL ack 5\n", "checksum mismatch"),
        ] {
            let r = check(bad.lines());
            assert!(!r.ok() && r.summary().contains(why), "{bad}: {}", r.summary());
        }
        assert_eq!(check("".lines()).summary(), "no JOURNAL ack lines");
    }

    /// The payload's record format (payload/src/journal_model.rs) and dom0's checker
    /// (tools/lab/journal-check.py), written apart, agree: on an image the payload's code
    /// wrote, and on the damage the checker must report.
    #[test]
    fn the_dom0_checker_reads_what_the_payload_writes() {
        use xshim_payload::journal_model::{block_of, encode};
        let bs = 512;
        let mut img = vec![0u8; bs * 40];
        for seq in 1..=30u64 {
            encode(seq, seq, &mut img[seq as usize * bs..(seq as usize + 1) * bs]);
        }
        let dir = std::env::temp_dir().join(format!("xshim-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run_ring = |img: &[u8], ring: u64, acked: u64| {
            let path = dir.join("disk.img");
            std::fs::write(&path, img).unwrap();
            let out = std::process::Command::new("python3").arg(crate::util::root().join("tools/lab/journal-check.py")).arg(&path).arg(bs.to_string()).arg(ring.to_string()).arg(acked.to_string()).arg("t").output().expect("python3 (cargo xshim setup installs it)");
            (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let run = |img: &[u8], acked: u64| run_ring(img, 39, acked);
        let (ok, text) = run(&img, 25);
        assert!(ok && text.contains("records 1..25 (all 25 acknowledged") && text.contains("5 more written"), "{text}");
        let (ok, text) = run(&img, 31);
        assert!(!ok && text.contains("seq 31 missing"), "{text}");
        let mut torn = img.clone();
        torn[7 * bs + 100] ^= 0x40;
        let (ok, text) = run(&torn, 30);
        assert!(!ok && text.contains("seq 7 checksum mismatch"), "{text}");
        let mut stale = img.clone();
        stale.copy_within(3 * bs..4 * bs, 9 * bs);
        let (ok, text) = run(&stale, 30);
        assert!(!ok && text.contains("seq 9 holds record 3"), "{text}");
        // A ring of 8 blocks after 20 records: records 13..20 in blocks 5..8 and 1..4.
        let mut ring = vec![0u8; bs * 9];
        for seq in 1..=20u64 {
            let k = block_of(seq, 8) as usize;
            encode(seq, k as u64, &mut ring[k * bs..(k + 1) * bs]);
        }
        let (ok, text) = run_ring(&ring, 8, 20);
        assert!(ok && text.contains("records 13..20"), "{text}");
        let (ok, text) = run_ring(&ring, 8, 21);
        assert!(!ok && text.contains("seq 21 holds record 13"), "{text}");
        // Acknowledged up to 18, but 19 and 20 were written after (in flight, or not yet
        // acknowledged when the guest stopped): 11 and 12 are gone, legitimately.
        let (ok, text) = run_ring(&ring, 8, 18);
        assert!(ok && text.contains("records 11..18") && text.contains("2 overwritten by later records"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
