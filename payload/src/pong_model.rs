//! The pong payload's answers, as pure functions over frames (host-tested): ARP requests for
//! its address, ICMP echo requests (ping) and UDP datagrams to its echo port, each answered
//! with one frame; everything else ignored. Parsing, checksums and emitting are smoltcp's
//! wire module (no sockets, no stack): a frame with a bad IPv4, ICMP or UDP checksum is not
//! answered, so a corrupted frame shows up as a loss, never as a wrong echo.
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Address,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN,
};

/// What a frame was, as far as pong is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Arp,
    Icmp,
    Udp,
    /// Not for us, or not something pong answers (counted, not answered).
    Ignored,
    /// For us, but malformed or with a bad checksum.
    Bad,
}

/// `a.b.c.d`.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = s.split('.');
    for b in ip.iter_mut() {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

const TTL: u8 = 64;

/// The answer to `frame` written into `out` (at least as long as the frame, and 60 bytes):
/// its length and what it answered. `None`: nothing to send.
pub fn answer(mac: [u8; 6], ip: [u8; 4], echo_port: u16, frame: &[u8], out: &mut [u8]) -> (Kind, Option<usize>) {
    let me = EthernetAddress(mac);
    let my_ip = Ipv4Address::from_octets(ip);
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return (Kind::Bad, None) };
    let dst = eth.dst_addr();
    if dst != me && !dst.is_broadcast() {
        return (Kind::Ignored, None);
    }
    let peer = eth.src_addr();
    match eth.ethertype() {
        EthernetProtocol::Arp => {
            let Ok(arp) = ArpPacket::new_checked(eth.payload()) else { return (Kind::Bad, None) };
            let Ok(ArpRepr::EthernetIpv4 { operation: ArpOperation::Request, source_hardware_addr, source_protocol_addr, target_protocol_addr, .. }) = ArpRepr::parse(&arp) else {
                return (Kind::Ignored, None);
            };
            if target_protocol_addr != my_ip {
                return (Kind::Ignored, None);
            }
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: me,
                source_protocol_addr: my_ip,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            (Kind::Arp, Some(emit_arp(me, source_hardware_addr, &reply, out)))
        }
        EthernetProtocol::Ipv4 => {
            let caps = ChecksumCapabilities::default();
            let Ok(ipp) = Ipv4Packet::new_checked(eth.payload()) else { return (Kind::Bad, None) };
            let Ok(ipr) = Ipv4Repr::parse(&ipp, &caps) else { return (Kind::Bad, None) };
            if ipr.dst_addr != my_ip {
                return (Kind::Ignored, None);
            }
            let payload = ipp.payload();
            match ipr.next_header {
                IpProtocol::Icmp => {
                    let Ok(icmp) = Icmpv4Packet::new_checked(payload) else { return (Kind::Bad, None) };
                    let Ok(Icmpv4Repr::EchoRequest { ident, seq_no, data }) = Icmpv4Repr::parse(&icmp, &caps) else {
                        // A bad checksum and a message other than an echo request look alike
                        // here; both go unanswered.
                        return (Kind::Ignored, None);
                    };
                    let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
                    let ip_reply = Ipv4Repr { src_addr: my_ip, dst_addr: ipr.src_addr, next_header: IpProtocol::Icmp, payload_len: reply.buffer_len(), hop_limit: TTL };
                    let n = emit_ipv4(me, peer, &ip_reply, out, |buf| reply.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps));
                    (Kind::Icmp, Some(n))
                }
                IpProtocol::Udp => {
                    let Ok(udp) = UdpPacket::new_checked(payload) else { return (Kind::Bad, None) };
                    let (src, dst) = (IpAddress::Ipv4(ipr.src_addr), IpAddress::Ipv4(ipr.dst_addr));
                    let Ok(udpr) = UdpRepr::parse(&udp, &src, &dst, &caps) else { return (Kind::Bad, None) };
                    if udpr.dst_port != echo_port {
                        return (Kind::Ignored, None);
                    }
                    let data = udp.payload();
                    let reply = UdpRepr { src_port: udpr.dst_port, dst_port: udpr.src_port };
                    let ip_reply = Ipv4Repr { src_addr: my_ip, dst_addr: ipr.src_addr, next_header: IpProtocol::Udp, payload_len: reply.header_len() + data.len(), hop_limit: TTL };
                    let n = emit_ipv4(me, peer, &ip_reply, out, |buf| {
                        reply.emit(&mut UdpPacket::new_unchecked(buf), &dst, &src, data.len(), |p| p.copy_from_slice(data), &caps)
                    });
                    (Kind::Udp, Some(n))
                }
                _ => (Kind::Ignored, None),
            }
        }
        _ => (Kind::Ignored, None),
    }
}

/// A gratuitous ARP (RFC 5227: a request with sender and target address both ours),
/// broadcast, so that peers and dom0's bridge learn where the address is now.
pub fn gratuitous_arp(mac: [u8; 6], ip: [u8; 4], out: &mut [u8]) -> usize {
    let me = EthernetAddress(mac);
    let my_ip = Ipv4Address::from_octets(ip);
    let req = ArpRepr::EthernetIpv4 { operation: ArpOperation::Request, source_hardware_addr: me, source_protocol_addr: my_ip, target_hardware_addr: EthernetAddress([0; 6]), target_protocol_addr: my_ip };
    emit_arp(me, EthernetAddress::BROADCAST, &req, out)
}

/// Ethernet's minimum frame (without FCS): shorter answers are padded with zeros.
const MIN_FRAME: usize = 60;

fn emit_arp(me: EthernetAddress, to: EthernetAddress, arp: &ArpRepr, out: &mut [u8]) -> usize {
    let len = (ETHERNET_HEADER_LEN + arp.buffer_len()).max(MIN_FRAME);
    out[..len].fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut out[..len]);
    EthernetRepr { src_addr: me, dst_addr: to, ethertype: EthernetProtocol::Arp }.emit(&mut eth);
    arp.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    len
}

fn emit_ipv4(me: EthernetAddress, to: EthernetAddress, ip: &Ipv4Repr, out: &mut [u8], body: impl FnOnce(&mut [u8])) -> usize {
    let ip_len = ip.buffer_len() + ip.payload_len;
    let len = (ETHERNET_HEADER_LEN + ip_len).max(MIN_FRAME);
    out[..len].fill(0);
    let mut eth = EthernetFrame::new_unchecked(&mut out[..len]);
    EthernetRepr { src_addr: me, dst_addr: to, ethertype: EthernetProtocol::Ipv4 }.emit(&mut eth);
    let mut ipp = Ipv4Packet::new_unchecked(&mut eth.payload_mut()[..ip_len]);
    ip.emit(&mut ipp, &ChecksumCapabilities::default());
    body(ipp.payload_mut());
    len
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x5a, 0x00, 0x01];
    const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 9];
    const IP: [u8; 4] = [10, 99, 0, 2];
    const PEER_IP: [u8; 4] = [10, 99, 0, 1];

    fn arp_request(target: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(PEER),
            source_protocol_addr: Ipv4Address::from_octets(PEER_IP),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address::from_octets(target),
        };
        emit_arp(EthernetAddress(PEER), EthernetAddress::BROADCAST, &req, &mut f);
        f
    }

    /// A frame from the peer to us, built with the same emitters (their checksums right).
    fn ipv4_from_peer(proto: IpProtocol, payload_len: usize, body: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut f = vec![0u8; 1514];
        let ip = Ipv4Repr { src_addr: Ipv4Address::from_octets(PEER_IP), dst_addr: Ipv4Address::from_octets(IP), next_header: proto, payload_len, hop_limit: 64 };
        let n = emit_ipv4(EthernetAddress(PEER), EthernetAddress(MAC), &ip, &mut f, body);
        f.truncate(n);
        f
    }

    fn ping(seq: u16, data: &[u8]) -> Vec<u8> {
        let r = Icmpv4Repr::EchoRequest { ident: 7, seq_no: seq, data };
        ipv4_from_peer(IpProtocol::Icmp, r.buffer_len(), |b| r.emit(&mut Icmpv4Packet::new_unchecked(b), &ChecksumCapabilities::default()))
    }

    fn udp(port: u16, data: &[u8]) -> Vec<u8> {
        let r = UdpRepr { src_port: 40000, dst_port: port };
        let (s, d) = (IpAddress::Ipv4(Ipv4Address::from_octets(PEER_IP)), IpAddress::Ipv4(Ipv4Address::from_octets(IP)));
        ipv4_from_peer(IpProtocol::Udp, 8 + data.len(), |b| r.emit(&mut UdpPacket::new_unchecked(b), &s, &d, data.len(), |p| p.copy_from_slice(data), &ChecksumCapabilities::default()))
    }

    #[test]
    fn arp_requests_for_our_address_get_a_reply() {
        let mut out = [0u8; 1514];
        let (k, n) = answer(MAC, IP, 7, &arp_request(IP), &mut out);
        assert_eq!((k, n), (Kind::Arp, Some(60)));
        let eth = EthernetFrame::new_checked(&out[..60]).unwrap();
        assert_eq!((eth.dst_addr(), eth.src_addr()), (EthernetAddress(PEER), EthernetAddress(MAC)));
        let r = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
        let ArpRepr::EthernetIpv4 { operation, source_hardware_addr, source_protocol_addr, target_protocol_addr, .. } = r else { panic!() };
        assert_eq!((operation, source_hardware_addr, source_protocol_addr.octets(), target_protocol_addr.octets()), (ArpOperation::Reply, EthernetAddress(MAC), IP, PEER_IP));
        assert_eq!(answer(MAC, IP, 7, &arp_request([10, 99, 0, 3]), &mut out), (Kind::Ignored, None), "someone else's address");
    }

    #[test]
    fn pings_are_echoed_with_their_data() {
        let mut out = [0u8; 1514];
        let req = ping(5, b"0123456789abcdef");
        let (k, n) = answer(MAC, IP, 7, &req, &mut out);
        assert_eq!(k, Kind::Icmp);
        let eth = EthernetFrame::new_checked(&out[..n.unwrap()]).unwrap();
        let ipp = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ipr = Ipv4Repr::parse(&ipp, &ChecksumCapabilities::default()).expect("a valid IPv4 header checksum");
        assert_eq!((ipr.src_addr.octets(), ipr.dst_addr.octets()), (IP, PEER_IP));
        let r = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ipp.payload()).unwrap(), &ChecksumCapabilities::default()).expect("a valid ICMP checksum");
        assert_eq!(r, Icmpv4Repr::EchoReply { ident: 7, seq_no: 5, data: b"0123456789abcdef" });
        // A corrupted request is not answered.
        let mut bad = req.clone();
        bad[ETHERNET_HEADER_LEN + 20 + 8] ^= 1; // the first data byte (the frame ends in padding)
        assert_eq!(answer(MAC, IP, 7, &bad, &mut out).1, None);
    }

    #[test]
    fn udp_to_the_echo_port_comes_back_and_other_ports_are_ignored() {
        let mut out = [0u8; 1514];
        let (k, n) = answer(MAC, IP, 7, &udp(7, b"seq 42"), &mut out);
        assert_eq!(k, Kind::Udp);
        let eth = EthernetFrame::new_checked(&out[..n.unwrap()]).unwrap();
        let ipp = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ipr = Ipv4Repr::parse(&ipp, &ChecksumCapabilities::default()).unwrap();
        let u = UdpPacket::new_checked(ipp.payload()).unwrap();
        let r = UdpRepr::parse(&u, &IpAddress::Ipv4(ipr.src_addr), &IpAddress::Ipv4(ipr.dst_addr), &ChecksumCapabilities::default()).expect("a valid UDP checksum");
        assert_eq!((r.src_port, r.dst_port, u.payload()), (7, 40000, &b"seq 42"[..]));
        assert_eq!(answer(MAC, IP, 7, &udp(9, b"x"), &mut out), (Kind::Ignored, None));
        let mut bad = udp(7, b"seq 43");
        bad[ETHERNET_HEADER_LEN + 20 + 8] ^= 0x40;
        assert_eq!(answer(MAC, IP, 7, &bad, &mut out), (Kind::Bad, None), "a bad UDP checksum");
    }

    #[test]
    fn runts_garbage_and_other_destinations_are_not_answered() {
        let mut out = [0u8; 1514];
        assert_eq!(answer(MAC, IP, 7, &[0u8; 10], &mut out), (Kind::Bad, None));
        let mut other = ping(1, b"x");
        other[..6].copy_from_slice(&[0x02, 1, 2, 3, 4, 5]);
        assert_eq!(answer(MAC, IP, 7, &other, &mut out), (Kind::Ignored, None));
        let mut garbage = ping(1, b"x");
        garbage[14] = 0x65; // IP version 6 in an IPv4 frame
        assert_eq!(answer(MAC, IP, 7, &garbage, &mut out), (Kind::Bad, None));
    }

    #[test]
    fn the_gratuitous_arp_is_a_broadcast_request_for_our_own_address() {
        let mut out = [0u8; 64];
        let n = gratuitous_arp(MAC, IP, &mut out);
        let eth = EthernetFrame::new_checked(&out[..n]).unwrap();
        assert!(eth.dst_addr().is_broadcast());
        let ArpRepr::EthernetIpv4 { operation, source_protocol_addr, target_protocol_addr, .. } = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap() else { panic!() };
        assert_eq!((operation, source_protocol_addr.octets(), target_protocol_addr.octets()), (ArpOperation::Request, IP, IP));
        assert_eq!(parse_ipv4("10.99.0.2"), Some(IP));
        assert_eq!(parse_ipv4("10.99.0"), None);
        assert_eq!(parse_ipv4("10.99.0.256"), None);
    }
}
