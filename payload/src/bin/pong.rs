//! Answers ARP, ICMP echo (ping) and UDP echo on network interface 0, at the IPv4 address
//! from its command line, so that the standard tools (`ping`, `nc -u`) reach a wrapped guest.
//! Once a second it prints `PONG <n> rx=.. arp=.. icmp=.. udp=.. bad=.. ignored=.. again=..`
//! (the counters so far). After every resume in a new domain it sends a gratuitous ARP (the
//! shim has already announced the MAC to the bridge; this tells IP peers too).
//! Command line: `ip=A.B.C.D` (required), `port=P` the UDP echo port (default 7),
//! `seconds=N` powers off after N seconds (default: never), `dev=D` (default 0), `flood=N`
//! first sends N full-size frames back to back without waiting (EtherType 0x88b5, local
//! experimental, to nobody in particular) and prints `PONG flood sent=.. again=..`: a payload
//! that floods NET_SEND must get `Again`, never a hang.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pong is a payload: build it with `cargo xshim build` and run it under the shim");
}

#[cfg(target_os = "none")]
mod payload {
    use core::fmt::Write;
    use xshim_payload::abi::{Error, Wake};
    use xshim_payload::pong_model::{answer, gratuitous_arp, parse_ipv4, Kind};
    use xshim_payload::rt::Shim;

    fn word<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
        cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    #[derive(Default)]
    struct Counts {
        rx: u64,
        arp: u64,
        icmp: u64,
        udp: u64,
        bad: u64,
        ignored: u64,
        /// Answers that found no free send slot even after waiting `SEND_PATIENCE_NS` (dropped).
        again: u64,
    }

    /// How long an answer waits for a free send slot before it is dropped (after a resume or
    /// a checkpoint, frames that queued meanwhile come in a burst, faster than the backend
    /// sends the answers under TCG).
    const SEND_PATIENCE_NS: u64 = 500_000_000;

    /// Sends `frame`; on `Again`, waits for a free slot (WAIT's NET_TX), for a while.
    fn send(shim: &Shim, dev: u32, frame: &[u8], counts: &mut Counts) {
        let deadline = shim.monotonic_ns() + SEND_PATIENCE_NS;
        loop {
            match shim.net_send(dev, frame) {
                Ok(_) => return,
                Err(Error::Again) if shim.monotonic_ns() < deadline => {
                    shim.wait(deadline);
                }
                Err(_) => {
                    counts.again += 1;
                    return;
                }
            }
        }
    }

    fn main(shim: &mut Shim) -> u64 {
        let mut cmd = [0u8; 256];
        let cmdline = shim.cmdline(&mut cmd);
        let Some(ip) = word(cmdline, "ip").and_then(parse_ipv4) else {
            let _ = writeln!(shim, "PONG-ERROR no ip=A.B.C.D on the command line");
            return 2;
        };
        let port = word(cmdline, "port").and_then(|p| p.parse::<u16>().ok()).unwrap_or(7);
        let seconds = word(cmdline, "seconds").and_then(|p| p.parse::<u64>().ok()).unwrap_or(u64::MAX);
        let dev = word(cmdline, "dev").and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
        let info = match shim.net_info(dev) {
            Ok(i) => i,
            Err(e) => {
                let _ = writeln!(shim, "PONG-ERROR no network interface {dev}: {e:?}");
                return 1;
            }
        };
        let m = info.mac;
        let _ = writeln!(shim, "PONG start mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} ip {}.{}.{}.{} mtu {} udp echo port {}", m[0], m[1], m[2], m[3], m[4], m[5], ip[0], ip[1], ip[2], ip[3], info.mtu, port);
        shim.resume_notify(true);
        let mut counts = Counts::default();
        let mut frame = [0u8; 1514];
        let mut out = [0u8; 1514];
        let n = gratuitous_arp(m, ip, &mut out);
        send(shim, dev, &out[..n], &mut counts);
        if let Some(n) = word(cmdline, "flood").and_then(|p| p.parse::<u64>().ok()) {
            let mut f = [0u8; 1514];
            f[0..6].copy_from_slice(&[0xff; 6]);
            f[6..12].copy_from_slice(&m);
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            let (mut sent, mut again, mut other) = (0u64, 0u64, 0u64);
            let t0 = shim.monotonic_ns();
            for i in 0..n {
                f[14..22].copy_from_slice(&i.to_be_bytes());
                match shim.net_send(dev, &f[..info.mtu as usize + 14]) {
                    Ok(_) => sent += 1,
                    Err(Error::Again) => again += 1,
                    Err(_) => other += 1,
                }
            }
            let _ = writeln!(shim, "PONG flood frames={n} sent={sent} again={again} errors={other} in {} us", (shim.monotonic_ns() - t0) / 1000);
        }
        let start = shim.monotonic_ns();
        let mut second = 1u64;
        while second <= seconds {
            let deadline = start + second * 1_000_000_000;
            let wake = shim.wait(deadline);
            if wake.contains(Wake::RESUMED) {
                let n = gratuitous_arp(m, ip, &mut out);
                send(shim, dev, &out[..n], &mut counts);
                let _ = writeln!(shim, "PONG resumed generation {}", shim.generation());
            }
            // Every frame queued, answered in order.
            loop {
                let len = match shim.net_recv(dev, &mut frame) {
                    Ok(n) => n as usize,
                    Err(Error::Again) => break,
                    Err(e) => {
                        let _ = writeln!(shim, "PONG-ERROR receiving: {e:?}");
                        return 1;
                    }
                };
                counts.rx += 1;
                let (kind, reply) = answer(m, ip, port, &frame[..len], &mut out);
                match kind {
                    Kind::Arp => counts.arp += 1,
                    Kind::Icmp => counts.icmp += 1,
                    Kind::Udp => counts.udp += 1,
                    Kind::Bad => counts.bad += 1,
                    Kind::Ignored => counts.ignored += 1,
                }
                if let Some(n) = reply {
                    send(shim, dev, &out[..n], &mut counts);
                }
            }
            if shim.monotonic_ns() >= deadline {
                let c = &counts;
                let _ = writeln!(shim, "PONG {} rx={} arp={} icmp={} udp={} bad={} ignored={} again={}", second, c.rx, c.arp, c.icmp, c.udp, c.bad, c.ignored, c.again);
                second += 1;
            }
        }
        let _ = writeln!(shim, "PONG done");
        0
    }
    xshim_payload::payload_main!(main);
}
