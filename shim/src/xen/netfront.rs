//! netfront: the shim's client of a Xen virtual network interface served by dom0's netback
//! (io/netif.h; one TX and one RX ring of one page, rx-copy, one slot a frame: no
//! scatter-gather, no GSO, no checksum offload, one queue, one event channel).
//!
//! The buffers are the shim's own pages, each granted once per domain: TX pages read-only,
//! RX pages read-write. A frame to send is copied into a free TX page; a received frame is
//! copied out of its RX page into a queue the payload reads, and the page goes straight back
//! to the backend. Frames are at most once: a TX frame in flight at a suspend is dropped in a
//! new domain (Ethernet may lose frames; sending it again could duplicate it), received frames
//! already queued survive. After reconnecting in a new domain the frontend sends an announce
//! frame (a RARP, as QEMU and virtio-net do after a migration) so that dom0's bridge learns
//! the guest's new port at once instead of after its 300 s ageing.
//!
//! Whatever the backend writes is checked before use. A response with an id we did not post,
//! a runt or oversized frame, a frame split over slots, an index claiming more responses than
//! requests: dropped and counted (`NetStats`), never trusted, never a crash.
//!
//! Host-testable: the machine is behind `NetEnv` and xenstore behind `xenbus::Store`; the
//! tests drive a fake backend.
use super::abi::netif::*;
use super::abi::xenbus::XenbusState;
use super::front_ring::{FrontRing, SharedRing};
use super::xenbus::{self, Backend, DeviceError, Link, Next, Store};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

pub const PAGE_BYTES: usize = 4096;
/// TX buffers (frames in flight to the backend at once).
pub const TX_BUFS: u16 = 32;
/// RX buffers posted to the backend.
pub const RX_BUFS: u16 = 64;
/// Received frames held for the payload; more are dropped (and counted) until it reads.
pub const RX_QUEUE_FRAMES: usize = 128;
/// The smallest and largest MTU accepted from the backend (without `feature-sg` a frame is
/// one slot: at most 1500 bytes of data).
const MTU_MIN: u64 = 68;
/// The announce frame's EtherType (RARP).
pub const ETHERTYPE_RARP: u16 = 0x8035;

/// A buffer page: TX or RX, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    Tx(u16),
    Rx(u16),
}

/// What the driver needs of the machine besides xenstore.
pub trait NetEnv {
    type TxRing: SharedRing<Request = NetifTxRequest, Response = NetifTxResponse>;
    type RxRing: SharedRing<Request = NetifRxRequest, Response = NetifRxResponse>;
    fn tx_ring(&mut self) -> &mut Self::TxRing;
    fn rx_ring(&mut self) -> &mut Self::RxRing;
    /// Grants the TX and RX ring pages to `domid`, read-write: (tx-ring-ref, rx-ring-ref).
    fn grant_rings(&mut self, domid: u16) -> Result<(u32, u32), DeviceError>;
    fn grant_buffer(&mut self, buf: Buffer, domid: u16, readonly: bool) -> Result<u32, DeviceError>;
    fn buffer(&mut self, buf: Buffer) -> &mut [u8; PAGE_BYTES];
    /// An unbound event channel port for `domid` to bind.
    fn alloc_port(&mut self, domid: u16) -> Result<u32, DeviceError>;
    fn notify(&mut self, port: u32);
}

/// What happened on the wire that the payload does not see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Received frames dropped because the payload's queue was full.
    pub rx_queue_full: u64,
    /// RX responses dropped: an error status, a runt or oversized frame, a bad offset, an id
    /// that is not the buffer posted in that slot, a frame split over slots.
    pub rx_bad: u64,
    /// TX responses with an error status.
    pub tx_errors: u64,
    /// TX responses naming no frame in flight.
    pub tx_bad: u64,
    /// Times the backend's rsp_prod claimed more responses than requests outstanding (the
    /// ring is left alone until it makes sense again).
    pub bad_index: u64,
    /// TX frames in flight at a suspend, dropped in the new domain.
    pub tx_dropped_at_resume: u64,
    /// Announce frames sent after reconnecting.
    pub announces: u64,
}

/// Why a payload's call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    /// No TX slot free (send) or no frame queued (recv): try again after WAIT.
    Again,
    /// A frame shorter than an Ethernet header or longer than MTU + 14, or a receive buffer
    /// shorter than MTU + 14.
    BadLength,
    /// The device failed (the log said why).
    Failed(String),
}

/// Where a multi-slot RX response chain is (netback sends none without `feature-sg`/GSO; a
/// backend that does anyway has its chain dropped whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    /// The next response starts a frame.
    Start,
    /// The next slot holds a `netif_extra_info`; `then_more`: data slots follow the extras.
    Extra { then_more: bool },
    /// The next slot continues a frame being dropped.
    More,
}

pub struct NetFront {
    /// `device/vif/<id>`.
    pub dev: String,
    pub backend: Backend,
    pub mac: [u8; 6],
    pub mtu: u32,
    pub port: u32,
    link: Link,
    /// A new domain's connection: announce the MAC once connected.
    announce_when_up: bool,
    tx: FrontRing,
    rx: FrontRing,
    tx_grefs: Vec<u32>,
    rx_grefs: Vec<u32>,
    /// TX buffers free (not in flight).
    tx_free: Vec<u16>,
    tx_in_flight: Vec<bool>,
    /// Frames the payload sent while the interface was connecting (buffer, length): they go
    /// on the ring once it is connected, after the announce.
    tx_held: VecDeque<(u16, u16)>,
    /// Which RX buffer is posted in each RX ring slot (a response comes back in its
    /// request's slot).
    rx_slot: Vec<Option<u16>>,
    rx_chain: Chain,
    rx_queue: VecDeque<Vec<u8>>,
    failed: Option<DeviceError>,
    pub stats: NetStats,
    /// The last connection's milestones, ns after it began: the backend at InitWait, our keys
    /// written, the backend Connected.
    pub handshake_ns: [u64; 3],
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim_end_matches('\0').trim().split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The announce frame: a RARP request for our own address, broadcast (what QEMU sends for a
/// guest after a migration), padded to Ethernet's 60-byte minimum.
pub fn announce_frame(mac: [u8; 6]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_RARP.to_be_bytes());
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op 3 (reverse request).
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 3]);
    f[22..28].copy_from_slice(&mac); // sender hardware address; sender IP 0
    f[32..38].copy_from_slice(&mac); // target hardware address; target IP 0
    f
}

impl NetFront {
    /// Connects to interface `dev` (`device/vif/<id>`).
    pub fn connect(store: &mut impl Store, env: &mut impl NetEnv, dev: &str, timeout_ns: u64) -> Result<NetFront, DeviceError> {
        let mut f = NetFront {
            dev: dev.into(),
            backend: Backend { path: String::new(), domid: 0 },
            mac: [0; 6],
            mtu: ETH_DATA_LEN,
            port: 0,
            link: Link::Lost,
            announce_when_up: false,
            tx: FrontRing::new(NET_TX_RING_SIZE),
            rx: FrontRing::new(NET_RX_RING_SIZE),
            tx_grefs: vec![0; TX_BUFS as usize],
            rx_grefs: vec![0; RX_BUFS as usize],
            tx_free: (0..TX_BUFS).rev().collect(),
            tx_in_flight: vec![false; TX_BUFS as usize],
            tx_held: VecDeque::new(),
            rx_slot: vec![None; NET_RX_RING_SIZE as usize],
            rx_chain: Chain::Start,
            rx_queue: VecDeque::new(),
            failed: None,
            stats: NetStats::default(),
            handshake_ns: [0; 3],
        };
        f.wait_connected(store, env, timeout_ns)?;
        Ok(f)
    }

    /// In a new domain: the rings, grants and port are gone with the old domain, and so is
    /// every TX frame in flight (dropped, not sent again: at most once); the frames already
    /// queued for the payload stay. Starts connecting to the new backend (`advance` goes on,
    /// and announces the guest's MAC once connected so that dom0's bridge forwards to the new
    /// port). Meanwhile receives find what was queued, and sends are held (up to all TX
    /// buffers but one, kept for the announce) and go out after the announce.
    /// Touches neither xenstore nor the machine.
    pub fn disconnect(&mut self) {
        let dropped = self.tx_in_flight.iter().filter(|&&b| b).count() + self.tx_held.len();
        self.stats.tx_dropped_at_resume += dropped as u64;
        self.tx_in_flight.iter_mut().for_each(|b| *b = false);
        self.tx_held.clear();
        self.tx_free = (0..TX_BUFS).rev().collect();
        self.announce_when_up = true;
        self.link = Link::Lost;
    }

    /// Whether the connection is made (the rings in use).
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Whether the backend's directory is known (`backend`): connected or connecting to it.
    pub fn backend_found(&self) -> bool {
        self.link != Link::Lost
    }

    /// Moves a connection on as far as the backend's state allows, without waiting.
    /// `Ok(true)`: connected by this call. `Ok(false)`: not yet, or connected already. An
    /// error fails the interface.
    pub fn advance(&mut self, store: &mut impl Store, env: &mut impl NetEnv, timeout_ns: u64) -> Result<bool, DeviceError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let next = self.link.next(store, &self.dev, &mut self.backend, timeout_ns);
            let since = self.link.since_ns().unwrap_or(0);
            let done = match next {
                Ok(Next::Wait | Next::Up) => return Ok(false),
                Ok(Next::Publish) => {
                    self.handshake_ns[0] = store.now_ns() - since;
                    let r = self.publish(store, env);
                    self.handshake_ns[1] = store.now_ns() - since;
                    r.map(|()| self.link.published())
                }
                Ok(Next::Finish) => {
                    self.handshake_ns[2] = store.now_ns() - since;
                    // The RX buffers were posted before the backend bound the port.
                    env.notify(self.port);
                    self.link = Link::Up;
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                return Err(self.fail(e));
            }
            if self.link.is_up() {
                if core::mem::take(&mut self.announce_when_up) && self.send(env, &announce_frame(self.mac)).is_ok() {
                    self.stats.announces += 1;
                }
                while let Some((id, len)) = self.tx_held.pop_front() {
                    self.put_tx(env, id, len);
                }
                if self.tx.push(env.tx_ring()) {
                    env.notify(self.port);
                }
                return Ok(true);
            }
        }
    }

    /// `advance` until connected, sleeping on the backend's state in between (at boot).
    fn wait_connected(&mut self, store: &mut impl Store, env: &mut impl NetEnv, timeout_ns: u64) -> Result<(), DeviceError> {
        while !self.advance(store, env, timeout_ns)? && !self.link.is_up() {
            self.link.wait(store, &self.backend, timeout_ns);
        }
        Ok(())
    }

    /// io/netif.h's connection, as Linux and Mini-OS do it, once the backend is at InitWait
    /// (netback gets there only once the hotplug script connected the vif to its bridge):
    /// fresh rings, every buffer granted, the RX buffers posted, our keys in one transaction,
    /// Connected (netback connects when the frontend is Connected: it skips Initialised for
    /// vifs); then the backend's Connected.
    fn publish(&mut self, store: &mut impl Store, env: &mut impl NetEnv) -> Result<(), DeviceError> {
        let dev = self.dev.clone();
        let be = self.backend.path.clone();
        if !xenbus::read_flag(store, &format!("{be}/feature-rx-copy"))? {
            return Err(DeviceError::BadValue { key: format!("{be}/feature-rx-copy"), value: "0".into(), why: "the backend does not offer rx-copy, the only receive mode the frontend has" });
        }
        let mac_key = format!("{dev}/mac");
        let mac = xenbus::read_key(store, &mac_key)?;
        self.mac = parse_mac(&mac).ok_or(DeviceError::BadValue { key: mac_key, value: mac, why: "not a MAC address (aa:bb:cc:dd:ee:ff)" })?;
        self.mtu = match store.read(&format!("{be}/mtu")) {
            Err(_) => ETH_DATA_LEN,
            Ok(_) => xenbus::read_number(store, &format!("{be}/mtu"), MTU_MIN, ETH_DATA_LEN as u64)? as u32,
        };
        env.tx_ring().init();
        env.rx_ring().init();
        self.tx.reset();
        self.rx.reset();
        self.rx_chain = Chain::Start;
        self.rx_slot.iter_mut().for_each(|s| *s = None);
        let domid = self.backend.domid;
        let (tx_ref, rx_ref) = env.grant_rings(domid)?;
        for i in 0..TX_BUFS {
            self.tx_grefs[i as usize] = env.grant_buffer(Buffer::Tx(i), domid, true)?;
        }
        for i in 0..RX_BUFS {
            self.rx_grefs[i as usize] = env.grant_buffer(Buffer::Rx(i), domid, false)?;
        }
        self.port = env.alloc_port(domid)?;
        for i in 0..RX_BUFS {
            self.post_rx(env, i);
        }
        self.rx.push(env.rx_ring());
        let keys = [
            ("tx-ring-ref", format!("{tx_ref}")),
            ("rx-ring-ref", format!("{rx_ref}")),
            ("event-channel", format!("{}", self.port)),
            ("request-rx-copy", "1".into()),
            ("feature-rx-notify", "1".into()),
            ("feature-no-csum-offload", "1".into()),
        ];
        let writes: Vec<(String, String)> = keys.iter().map(|(k, v)| (format!("{dev}/{k}"), v.clone())).collect();
        store.write_all(&writes).map_err(|why| DeviceError::Store { key: format!("{dev}/tx-ring-ref ..."), why })?;
        // netback connects when the frontend is Connected (it skips Initialised for vifs).
        xenbus::switch_state(store, &dev, XenbusState::Connected)
    }

    fn post_rx(&mut self, env: &mut impl NetEnv, buf: u16) {
        let slot = self.rx.producer_index() & (NET_RX_RING_SIZE - 1);
        let req = NetifRxRequest { id: buf, _pad: 0, gref: self.rx_grefs[buf as usize] };
        // Never full: RX_BUFS requests at most are outstanding in a ring of 256.
        if self.rx.put_request(env.rx_ring(), &req) {
            self.rx_slot[slot as usize] = Some(buf);
        }
    }

    pub fn failed(&self) -> Option<&DeviceError> {
        self.failed.as_ref()
    }

    fn fail(&mut self, e: DeviceError) -> DeviceError {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
        }
        e
    }

    /// Frames waiting for the payload (after reading what came).
    pub fn rx_pending(&mut self, env: &mut impl NetEnv) -> usize {
        self.poll(env);
        self.rx_queue.len()
    }

    /// Whether a send would find a free TX slot now.
    pub fn tx_free(&mut self, env: &mut impl NetEnv) -> bool {
        self.poll(env);
        self.tx_free.len() > self.tx_reserved()
    }

    /// TX buffers a send may not take: while connecting, the announce's.
    fn tx_reserved(&self) -> usize {
        usize::from(!self.link.is_up())
    }

    /// Reads every response that came, TX and RX; re-posts the RX buffers.
    pub fn poll(&mut self, env: &mut impl NetEnv) {
        if self.failed.is_some() || !self.link.is_up() {
            return;
        }
        self.poll_tx(env);
        self.poll_rx(env);
    }

    fn poll_tx(&mut self, env: &mut impl NetEnv) {
        loop {
            let ready = match self.tx.responses_ready(env.tx_ring()) {
                Ok(n) => n,
                Err(_) => {
                    self.stats.bad_index += 1;
                    return;
                }
            };
            for _ in 0..ready {
                let rsp = self.tx.take_response(env.tx_ring());
                if rsp.status == NETIF_RSP_NULL {
                    continue;
                }
                let id = rsp.id as usize;
                if id >= self.tx_in_flight.len() || !self.tx_in_flight[id] {
                    self.stats.tx_bad += 1;
                    continue;
                }
                self.tx_in_flight[id] = false;
                self.tx_free.push(id as u16);
                if rsp.status != NETIF_RSP_OKAY {
                    self.stats.tx_errors += 1;
                }
            }
            match self.tx.final_check(env.tx_ring()) {
                Ok(true) => continue,
                Ok(false) => return,
                Err(_) => {
                    self.stats.bad_index += 1;
                    return;
                }
            }
        }
    }

    fn poll_rx(&mut self, env: &mut impl NetEnv) {
        let mut reposted = false;
        loop {
            let ready = match self.rx.responses_ready(env.rx_ring()) {
                Ok(n) => n,
                Err(_) => {
                    self.stats.bad_index += 1;
                    break;
                }
            };
            for _ in 0..ready {
                let slot = self.rx.consumer_index() & (NET_RX_RING_SIZE - 1);
                let rsp = self.rx.take_response(env.rx_ring());
                let Some(buf) = self.rx_slot[slot as usize].take() else {
                    // Counted responses never exceed the requests outstanding, and every
                    // outstanding request has its slot: cannot happen, but not trusted.
                    self.stats.rx_bad += 1;
                    continue;
                };
                self.receive(env, buf, rsp);
                self.post_rx(env, buf);
                reposted = true;
            }
            match self.rx.final_check(env.rx_ring()) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(_) => {
                    self.stats.bad_index += 1;
                    break;
                }
            }
        }
        // feature-rx-notify: we tell the backend of new buffers when it asked to be told.
        if reposted && self.rx.push(env.rx_ring()) {
            env.notify(self.port);
        }
    }

    /// One RX response in buffer `buf`: a frame for the queue, or something dropped.
    fn receive(&mut self, env: &mut impl NetEnv, buf: u16, rsp: NetifRxResponse) {
        match self.rx_chain {
            Chain::Extra { then_more } => {
                // A netif_extra_info: type in byte 0, flags in byte 1 (bit 0: another follows).
                let more_extras = (rsp.id >> 8) & 1 != 0;
                self.rx_chain = if more_extras { Chain::Extra { then_more } } else if then_more { Chain::More } else { Chain::Start };
                return;
            }
            Chain::More => {
                self.rx_chain = if rsp.flags & NETRXF_MORE_DATA != 0 { Chain::More } else { Chain::Start };
                return;
            }
            Chain::Start => {}
        }
        let more = rsp.flags & NETRXF_MORE_DATA != 0;
        if rsp.flags & NETRXF_EXTRA_INFO != 0 {
            self.rx_chain = Chain::Extra { then_more: more };
            self.stats.rx_bad += 1;
            return;
        }
        if more {
            self.rx_chain = Chain::More;
            self.stats.rx_bad += 1;
            return;
        }
        let len = rsp.status as i32;
        let offset = rsp.offset as usize;
        let max = self.mtu as usize + ETH_HLEN;
        if rsp.id != buf || len < ETH_HLEN as i32 || len as usize > max || offset + len as usize > PAGE_BYTES {
            self.stats.rx_bad += 1;
            return;
        }
        if self.rx_queue.len() >= RX_QUEUE_FRAMES {
            self.stats.rx_queue_full += 1;
            return;
        }
        let frame = env.buffer(Buffer::Rx(buf))[offset..offset + len as usize].to_vec();
        self.rx_queue.push_back(frame);
        self.stats.rx_frames += 1;
    }

    /// The payload's send: the frame copied into a free TX buffer and handed to the backend
    /// (held until then while the interface connects). Never blocks: `Again` when every
    /// buffer or slot is in use.
    pub fn send(&mut self, env: &mut impl NetEnv, frame: &[u8]) -> Result<(), NetError> {
        if let Some(e) = &self.failed {
            return Err(NetError::Failed(format!("{e}")));
        }
        if frame.len() < ETH_HLEN || frame.len() > self.mtu as usize + ETH_HLEN {
            return Err(NetError::BadLength);
        }
        self.poll(env);
        let up = self.link.is_up();
        if (up && self.tx.free_slots() == 0) || self.tx_free.len() <= self.tx_reserved() {
            return Err(NetError::Again);
        }
        let Some(id) = self.tx_free.pop() else { return Err(NetError::Again) };
        env.buffer(Buffer::Tx(id))[..frame.len()].copy_from_slice(frame);
        self.stats.tx_frames += 1;
        if !up {
            self.tx_held.push_back((id, frame.len() as u16));
            return Ok(());
        }
        self.put_tx(env, id, frame.len() as u16);
        if self.tx.push(env.tx_ring()) {
            env.notify(self.port);
        }
        Ok(())
    }

    /// Puts TX buffer `id` (a frame of `len` bytes) on the ring; the caller pushes.
    fn put_tx(&mut self, env: &mut impl NetEnv, id: u16, len: u16) {
        let req = NetifTxRequest { gref: self.tx_grefs[id as usize], offset: 0, flags: 0, id, size: len };
        let put = self.tx.put_request(env.tx_ring(), &req);
        debug_assert!(put, "a free slot was checked (a fresh ring has a slot for every buffer)");
        self.tx_in_flight[id as usize] = true;
    }

    /// The payload's receive: the oldest queued frame into `buf` (at least MTU + 14 bytes),
    /// its length. Never blocks: `Again` when none is queued.
    pub fn recv(&mut self, env: &mut impl NetEnv, buf: &mut [u8]) -> Result<usize, NetError> {
        if buf.len() < self.mtu as usize + ETH_HLEN {
            return Err(NetError::BadLength);
        }
        // Frames queued before a failure are still delivered.
        self.poll(env);
        let Some(frame) = self.rx_queue.pop_front() else {
            return match &self.failed {
                Some(e) => Err(NetError::Failed(format!("{e}"))),
                None => Err(NetError::Again),
            };
        };
        buf[..frame.len()].copy_from_slice(&frame);
        Ok(frame.len())
    }

    /// At poweroff: tell the backend we are going.
    pub fn close(&mut self, store: &mut impl Store, timeout_ns: u64) -> Result<(), DeviceError> {
        xenbus::close(store, &self.dev, &self.backend, timeout_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::front_ring::tests::MemRing;
    use crate::xen::xenbus::tests::FakeStore;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;

    const DEV: &str = "device/vif/0";
    const BE: &str = "/local/domain/0/backend/vif/7/0";
    const MAC: [u8; 6] = [0x00, 0x16, 0x3e, 0x5a, 0x00, 0x01];

    /// netback's side: the rings, the grants as the backend sees them, what it sent.
    struct Fake {
        tx: MemRing<NetifTxRequest, NetifTxResponse>,
        rx: MemRing<NetifRxRequest, NetifRxResponse>,
        tx_pages: Vec<[u8; PAGE_BYTES]>,
        rx_pages: Vec<[u8; PAGE_BYTES]>,
        /// gref -> buffer
        grants: BTreeMap<u32, Buffer>,
        next_gref: u32,
        notified: u32,
        /// TX requests read by the backend, RX requests used.
        tx_cons: u32,
        rx_cons: u32,
        /// Frames the guest sent, as the backend read them.
        sent: Vec<Vec<u8>>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                tx: MemRing::new(NET_TX_RING_SIZE as usize),
                rx: MemRing::new(NET_RX_RING_SIZE as usize),
                tx_pages: vec![[0; PAGE_BYTES]; TX_BUFS as usize],
                rx_pages: vec![[0; PAGE_BYTES]; RX_BUFS as usize],
                grants: BTreeMap::new(),
                next_gref: 8,
                notified: 0,
                tx_cons: 0,
                rx_cons: 0,
                sent: Vec::new(),
            }
        }

        /// The backend transmits the guest's frames (answering `n` at most).
        fn serve_tx(&mut self, n: usize) {
            for _ in 0..n {
                if self.tx_cons == self.tx.req_prod {
                    return;
                }
                let req = self.tx.reqs[(self.tx_cons % NET_TX_RING_SIZE) as usize];
                self.tx_cons += 1;
                let Some(Buffer::Tx(b)) = self.grants.get(&req.gref).copied() else { panic!("TX gref {} not a TX grant", req.gref) };
                let at = req.offset as usize;
                self.sent.push(self.tx_pages[b as usize][at..at + req.size as usize].to_vec());
                self.tx_respond(req.id, NETIF_RSP_OKAY);
            }
        }

        fn tx_respond(&mut self, id: u16, status: i16) {
            let slot = (self.tx.rsp_prod % NET_TX_RING_SIZE) as usize;
            self.tx.rsps[slot] = NetifTxResponse { id, status };
            self.tx.rsp_prod += 1;
        }

        /// The backend copies a frame into the next posted RX buffer: false if none is posted.
        fn deliver(&mut self, frame: &[u8]) -> bool {
            if self.rx_cons == self.rx.req_prod {
                return false;
            }
            let slot = (self.rx_cons % NET_RX_RING_SIZE) as usize;
            let req = self.rx.reqs[slot];
            self.rx_cons += 1;
            let Some(Buffer::Rx(b)) = self.grants.get(&req.gref).copied() else { panic!("RX gref {} not an RX grant", req.gref) };
            self.rx_pages[b as usize][..frame.len()].copy_from_slice(frame);
            self.rx_respond(slot, NetifRxResponse { id: req.id, offset: 0, flags: 0, status: frame.len() as i16 });
            true
        }

        /// A raw response in the slot of the next posted request (it is used up).
        fn rx_raw(&mut self, mut rsp: impl FnMut(NetifRxRequest) -> NetifRxResponse) {
            let slot = (self.rx_cons % NET_RX_RING_SIZE) as usize;
            let req = self.rx.reqs[slot];
            self.rx_cons += 1;
            self.rx_respond(slot, rsp(req));
        }

        fn rx_respond(&mut self, slot: usize, rsp: NetifRxResponse) {
            assert_eq!(slot as u32, self.rx.rsp_prod % NET_RX_RING_SIZE, "netif: a response goes in its request's slot");
            self.rx.rsps[slot] = rsp;
            self.rx.rsp_prod += 1;
        }

        fn new_domain(&mut self) {
            self.grants.clear();
            self.next_gref = 8;
            self.tx_cons = 0;
            self.rx_cons = 0;
        }
    }

    impl NetEnv for Fake {
        type TxRing = MemRing<NetifTxRequest, NetifTxResponse>;
        type RxRing = MemRing<NetifRxRequest, NetifRxResponse>;
        fn tx_ring(&mut self) -> &mut Self::TxRing {
            &mut self.tx
        }
        fn rx_ring(&mut self) -> &mut Self::RxRing {
            &mut self.rx
        }
        fn grant_rings(&mut self, domid: u16) -> Result<(u32, u32), DeviceError> {
            assert_eq!(domid, 7);
            self.next_gref += 2;
            Ok((self.next_gref - 2, self.next_gref - 1))
        }
        fn grant_buffer(&mut self, buf: Buffer, domid: u16, readonly: bool) -> Result<u32, DeviceError> {
            assert_eq!(domid, 7);
            assert_eq!(readonly, matches!(buf, Buffer::Tx(_)), "TX pages read-only, RX pages writable");
            let g = self.next_gref;
            self.next_gref += 1;
            self.grants.insert(g, buf);
            Ok(g)
        }
        fn buffer(&mut self, buf: Buffer) -> &mut [u8; PAGE_BYTES] {
            match buf {
                Buffer::Tx(i) => &mut self.tx_pages[i as usize],
                Buffer::Rx(i) => &mut self.rx_pages[i as usize],
            }
        }
        fn alloc_port(&mut self, _domid: u16) -> Result<u32, DeviceError> {
            Ok(21)
        }
        fn notify(&mut self, _port: u32) {
            self.notified += 1;
        }
    }

    /// xenstore as libxl and netback leave it, netback connecting when we are Connected.
    fn store() -> FakeStore {
        let mut s = FakeStore::new(&[
            (&format!("{DEV}/backend"), BE),
            (&format!("{DEV}/backend-id"), "7"),
            (&format!("{DEV}/mac"), "00:16:3e:5a:00:01"),
            (&format!("{DEV}/state"), "1"),
            (&format!("{BE}/state"), "2"),
            (&format!("{BE}/feature-rx-copy"), "1"),
        ]);
        s.on_wait = |k, _| {
            if k.get(&format!("{DEV}/state")).map(|v| v.as_str()) == Some("4") {
                k.insert(format!("{BE}/state"), "4".into());
            }
        };
        s
    }

    fn connected() -> (FakeStore, Fake, NetFront) {
        let mut s = store();
        let mut fake = Fake::new();
        let f = NetFront::connect(&mut s, &mut fake, DEV, 1_000_000_000).expect("connects");
        (s, fake, f)
    }

    fn frame(n: u8, len: usize) -> Vec<u8> {
        let mut f = vec![n; len];
        f[..6].copy_from_slice(&MAC);
        f
    }

    #[test]
    fn the_handshake_writes_netbacks_keys_and_posts_every_rx_buffer() {
        let (s, fake, f) = connected();
        assert_eq!((f.mac, f.mtu), (MAC, 1500));
        for k in ["tx-ring-ref", "rx-ring-ref", "event-channel"] {
            assert!(s.keys.contains_key(&format!("{DEV}/{k}")), "{k} written");
        }
        for k in ["request-rx-copy", "feature-rx-notify", "feature-no-csum-offload"] {
            assert_eq!(s.keys[&format!("{DEV}/{k}")], "1", "{k}");
        }
        assert_eq!(s.keys[&format!("{DEV}/state")], "4");
        assert_eq!(fake.rx.req_prod, RX_BUFS as u32, "every RX buffer posted");
        assert_eq!(fake.grants.len(), (TX_BUFS + RX_BUFS) as usize);
        assert!(fake.notified >= 1, "the backend is told of the posted buffers");
    }

    #[test]
    fn backends_without_rx_copy_or_with_a_bad_mac_or_mtu_are_refused_by_name() {
        let mut s = store();
        s.keys.insert(format!("{BE}/feature-rx-copy"), "0".into());
        let e = NetFront::connect(&mut s, &mut Fake::new(), DEV, 1_000_000_000).err().unwrap();
        assert!(e.to_string().contains("feature-rx-copy"), "{e}");
        let mut s = store();
        s.keys.insert(format!("{DEV}/mac"), "00:16:3e:5a:00".into());
        let e = NetFront::connect(&mut s, &mut Fake::new(), DEV, 1_000_000_000).err().unwrap();
        assert!(e.to_string().contains("not a MAC address"), "{e}");
        let mut s = store();
        s.keys.insert(format!("{BE}/mtu"), "9000".into());
        let e = NetFront::connect(&mut s, &mut Fake::new(), DEV, 1_000_000_000).err().unwrap();
        assert!(e.to_string().contains("out of range"), "{e}");
        let mut s = store();
        s.keys.insert(format!("{BE}/state"), "2".into());
        s.on_wait = |_, _| {};
        let e = NetFront::connect(&mut s, &mut Fake::new(), DEV, 200_000_000).err().unwrap();
        assert!(matches!(e, DeviceError::BackendTimeout { .. }), "{e:?}");
    }

    #[test]
    fn frames_go_out_and_come_in_and_rx_buffers_are_recycled() {
        let (_s, mut fake, mut f) = connected();
        let mut buf = vec![0u8; 1514];
        assert_eq!(f.recv(&mut fake, &mut buf), Err(NetError::Again));
        // More frames than buffers, in rounds: every buffer goes back to the backend.
        for round in 0..5u8 {
            for i in 0..RX_BUFS as u8 {
                assert!(fake.deliver(&frame(i ^ round, 60 + i as usize)), "round {round}: a buffer posted for frame {i}");
            }
            for i in 0..RX_BUFS as u8 {
                let n = f.recv(&mut fake, &mut buf).unwrap();
                assert_eq!(&buf[..n], &frame(i ^ round, 60 + i as usize)[..]);
            }
        }
        assert_eq!(f.stats.rx_frames, 5 * RX_BUFS as u64);
        f.send(&mut fake, &frame(1, 100)).unwrap();
        f.send(&mut fake, &frame(2, 1514)).unwrap();
        fake.serve_tx(10);
        assert_eq!(fake.sent, vec![frame(1, 100), frame(2, 1514)]);
        assert_eq!(f.send(&mut fake, &frame(3, 13)), Err(NetError::BadLength), "a runt");
        assert_eq!(f.send(&mut fake, &frame(3, 1515)), Err(NetError::BadLength), "past the MTU");
        assert_eq!(f.recv(&mut fake, &mut [0u8; 100]), Err(NetError::BadLength), "a short receive buffer");
    }

    #[test]
    fn a_flood_of_sends_gets_again_and_resumes_when_the_backend_answers() {
        let (_s, mut fake, mut f) = connected();
        let mut sent = 0;
        while f.send(&mut fake, &frame(sent as u8, 60)).is_ok() {
            sent += 1;
        }
        assert_eq!(sent, TX_BUFS as usize);
        assert_eq!(f.send(&mut fake, &frame(0, 60)), Err(NetError::Again));
        assert!(!f.tx_free(&mut fake));
        fake.serve_tx(1);
        assert!(f.tx_free(&mut fake));
        f.send(&mut fake, &frame(9, 60)).unwrap();
    }

    #[test]
    fn bad_rx_responses_are_dropped_and_counted() {
        let (_s, mut fake, mut f) = connected();
        // A runt, an oversized frame, an error status, a wrong id, an offset past the page.
        fake.rx_raw(|r| NetifRxResponse { id: r.id, offset: 0, flags: 0, status: 10 });
        fake.rx_raw(|r| NetifRxResponse { id: r.id, offset: 0, flags: 0, status: 1515 });
        fake.rx_raw(|r| NetifRxResponse { id: r.id, offset: 0, flags: 0, status: NETIF_RSP_ERROR });
        fake.rx_raw(|r| NetifRxResponse { id: r.id + 1, offset: 0, flags: 0, status: 60 });
        fake.rx_raw(|r| NetifRxResponse { id: r.id, offset: 4000, flags: 0, status: 200 });
        // A frame in two slots with an extra-info slot: dropped whole.
        fake.rx_raw(|r| NetifRxResponse { id: r.id, offset: 0, flags: NETRXF_EXTRA_INFO | NETRXF_MORE_DATA, status: 1000 });
        fake.rx_raw(|_| NetifRxResponse { id: 0x0001, offset: 0, flags: 0xffff, status: 0 }); // extra, no more extras
        fake.rx_raw(|r| NetifRxResponse { id: r.id, offset: 0, flags: 0, status: 500 }); // last piece
        assert!(fake.deliver(&frame(7, 60)));
        let mut buf = vec![0u8; 1514];
        assert_eq!(f.recv(&mut fake, &mut buf), Ok(60), "the good frame after them arrives");
        assert_eq!(f.recv(&mut fake, &mut buf), Err(NetError::Again));
        assert_eq!((f.stats.rx_bad, f.stats.rx_frames), (6, 1));
        assert!(f.failed().is_none());
        // Every buffer went back, the bad ones included.
        assert_eq!(fake.rx.req_prod - fake.rx_cons, RX_BUFS as u32);
    }

    #[test]
    fn absurd_indices_and_unknown_tx_ids_are_counted_never_trusted() {
        let (_s, mut fake, mut f) = connected();
        f.send(&mut fake, &frame(1, 60)).unwrap();
        fake.tx_respond(30, NETIF_RSP_OKAY); // never sent
        fake.tx_respond(0xffff, NETIF_RSP_OKAY);
        assert!(f.tx_free(&mut fake));
        assert_eq!(f.stats.tx_bad, 0, "more responses than requests: the index is not trusted at all");
        assert_eq!(f.stats.bad_index, 1);
        fake.tx.rsp_prod -= 1; // the backend comes to its senses: one response, a bad id
        f.poll(&mut fake);
        assert_eq!(f.stats.tx_bad, 1);
        fake.rx.rsp_prod = 0x8000_0000;
        let mut buf = vec![0u8; 1514];
        assert_eq!(f.recv(&mut fake, &mut buf), Err(NetError::Again));
        assert!(f.stats.bad_index >= 2);
        assert!(f.failed().is_none(), "the device keeps going");
    }

    #[test]
    fn the_queue_is_bounded() {
        let (_s, mut fake, mut f) = connected();
        let mut n = 0;
        while n < RX_QUEUE_FRAMES + 10 {
            assert!(fake.deliver(&frame(1, 60)));
            f.poll(&mut fake);
            n += 1;
        }
        assert_eq!((f.rx_queue.len(), f.stats.rx_queue_full), (RX_QUEUE_FRAMES, 10));
    }

    #[test]
    fn a_new_domain_drops_tx_in_flight_keeps_rx_queued_and_announces() {
        let (mut s, mut fake, mut f) = connected();
        f.send(&mut fake, &frame(1, 60)).unwrap();
        f.send(&mut fake, &frame(2, 60)).unwrap();
        assert!(fake.deliver(&frame(3, 70)));
        f.poll(&mut fake);
        // The suspend: nothing answered. The new domain's backend is still being set up.
        fake.new_domain();
        s.keys.insert(format!("{BE}/state"), "1".into());
        s.keys.insert(format!("{DEV}/state"), "1".into());
        f.disconnect();
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(false));
        assert_eq!(f.stats.tx_dropped_at_resume, 2);
        // Connecting in the background: the queued frame is received; sends are held, all
        // buffers but the announce's.
        let mut buf = vec![0u8; 1514];
        assert_eq!(f.recv(&mut fake, &mut buf), Ok(70), "the frame received before the suspend");
        for i in 0..TX_BUFS - 1 {
            assert!(f.tx_free(&mut fake));
            assert_eq!(f.send(&mut fake, &frame(10 + i as u8, 60)), Ok(()));
        }
        assert!(!f.tx_free(&mut fake));
        assert_eq!(f.send(&mut fake, &frame(5, 60)), Err(NetError::Again));
        assert_eq!(f.recv(&mut fake, &mut buf), Err(NetError::Again));
        // netback at InitWait: our keys and Connected; then netback Connected.
        s.keys.insert(format!("{BE}/state"), "2".into());
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(false));
        assert_eq!(s.keys[&format!("{DEV}/state")], "4");
        s.wait_change("anything", u64::MAX);
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(true));
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(false));
        assert_eq!(f.stats.announces, 1);
        fake.serve_tx(100);
        assert_eq!(fake.sent.len(), TX_BUFS as usize, "the announce, then the held frames; the old frames are not sent again");
        let a = &fake.sent[0];
        assert_eq!((&a[0..6], &a[6..12], &a[12..14]), (&[0xff; 6][..], &MAC[..], &[0x80, 0x35][..]));
        for i in 0..TX_BUFS - 1 {
            assert_eq!(fake.sent[1 + i as usize], frame(10 + i as u8, 60));
        }
        assert!(fake.deliver(&frame(4, 80)), "new buffers were posted in the new domain");
        assert_eq!(f.recv(&mut fake, &mut buf), Ok(80));
        assert_eq!(fake.grants.len(), (TX_BUFS + RX_BUFS) as usize, "every buffer granted anew");
        assert!(f.tx_free(&mut fake));
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(parse_mac("00:16:3e:5a:00:01"), Some(MAC));
        assert_eq!(parse_mac("00:16:3e:5a:00:01\0"), Some(MAC));
        for bad in ["", "00:16:3e:5a:00", "00:16:3e:5a:00:01:02", "0:16:3e:5a:00:01", "zz:16:3e:5a:00:01"] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
