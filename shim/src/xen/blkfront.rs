//! blkfront: the shim's client of a Xen virtual block device served by dom0's blkback
//! (io/blkif.h; a one-page ring, at most 11 segments a request, no indirect descriptors). The
//! payload's data goes through the shim's own bounce pages: granted once each, read-write,
//! when the backend offers persistent grants (`feature-persistent`: blkback then maps each
//! page once, not once per request), else granted for the length of one request. Every
//! request has a shadow here until its response: so a request the backend had not answered
//! when the domain was suspended is
//! sent again, with the same bytes, to the backend of the new domain (at least once on the
//! disk, exactly once for the payload).
//!
//! Host-testable: the machine is behind `BlkEnv` (ring page, grants, bounce pages, event
//! channel) and xenstore behind `xenbus::Store`; the tests drive a fake backend.
use super::abi::blkif::*;
use super::abi::xenbus::XenbusState;
use super::front_ring::{FrontRing, SharedRing};
use super::xenbus::{self, Backend, DeviceError, Link, Next, Store};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Sector numbers in requests and the `sectors` key are in these units, whatever the disk's
/// own sector size.
pub const SECTOR_BYTES: u64 = 512;
pub const PAGE_BYTES: usize = 4096;
/// The most one request carries: 11 pages.
pub const MAX_REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * PAGE_BYTES;
/// Disks up to 2^50 bytes (1 PiB); a larger `sectors` is taken for garbage.
const MAX_SECTORS: u64 = 1 << 41;
/// What the frontend tells blkback its ring entries look like.
pub const PROTOCOL: &str = "x86_64-abi";

/// How the backend makes written data durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Neither feature offered: writes are durable when they complete.
    WriteThrough,
    /// `feature-flush-cache`: an empty FLUSH_DISKCACHE request.
    Diskcache,
    /// Only `feature-barrier`: an empty WRITE_BARRIER request.
    Barrier,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// In 512-byte units.
    pub sectors: u64,
    /// The disk's sector size: offsets and lengths must be multiples of it.
    pub sector_size: u32,
    pub read_only: bool,
    pub flush: Flush,
}

impl Geometry {
    pub fn capacity_bytes(&self) -> u64 {
        self.sectors * SECTOR_BYTES
    }
}

/// The backend's description of the disk (its keys once it is Connected), checked.
pub fn read_geometry(store: &mut impl Store, backend: &str) -> Result<Geometry, DeviceError> {
    let sectors = xenbus::read_number(store, &format!("{backend}/sectors"), 1, MAX_SECTORS)?;
    let key = format!("{backend}/sector-size");
    let sector_size = match store.read(&key) {
        Err(_) => 512,
        Ok(v) => match v.trim_end_matches('\0').trim().parse::<u32>() {
            Ok(n) if n.is_power_of_two() && (512..=4096).contains(&n) => n,
            _ => return Err(DeviceError::BadValue { key, value: v, why: "not a power of two from 512 to 4096" }),
        },
    };
    if !(sectors * SECTOR_BYTES).is_multiple_of(sector_size as u64) {
        return Err(DeviceError::BadValue { key: format!("{backend}/sectors"), value: format!("{sectors}"), why: "not a whole number of the disk's sectors" });
    }
    let info = match store.read(&format!("{backend}/info")) {
        Err(_) => 0,
        Ok(_) => xenbus::read_number(store, &format!("{backend}/info"), 0, u32::MAX as u64)? as u32,
    };
    let flush = if xenbus::read_flag(store, &format!("{backend}/feature-flush-cache"))? {
        Flush::Diskcache
    } else if xenbus::read_flag(store, &format!("{backend}/feature-barrier"))? {
        Flush::Barrier
    } else {
        Flush::WriteThrough
    };
    Ok(Geometry { sectors, sector_size, read_only: info & (VDISK_READONLY | VDISK_CDROM) != 0, flush })
}

/// What the driver needs of the machine besides xenstore.
pub trait BlkEnv {
    type Ring: SharedRing<Request = BlkifRequest, Response = BlkifResponse>;
    fn ring(&mut self) -> &mut Self::Ring;
    /// Grants the ring page to `domid`, read-write; the reference.
    fn grant_ring(&mut self, domid: u16) -> Result<u32, DeviceError>;
    /// Grants bounce page `page` to `domid` (read-only: the backend only reads it).
    fn grant_page(&mut self, page: u16, domid: u16, readonly: bool) -> Result<u32, DeviceError>;
    /// Ends a grant. False when the backend still has the frame mapped: the page must not be
    /// used again.
    fn end_grant(&mut self, gref: u32) -> bool;
    fn page(&mut self, page: u16) -> &mut [u8; PAGE_BYTES];
    /// An unbound event channel port for `domid` to bind.
    fn alloc_port(&mut self, domid: u16) -> Result<u32, DeviceError>;
    fn notify(&mut self, port: u32);
}

/// A request sent and not yet collected.
#[derive(Debug, Clone)]
struct Shadow {
    req: BlkifRequest,
    pages: [u16; BLKIF_MAX_SEGMENTS_PER_REQUEST],
    /// Pages (bit i: `pages[i]`) the backend still had mapped when it answered: their data is
    /// good, but they never go back to the pool.
    leaked: u16,
    /// The backend's status once its response came.
    status: Option<i16>,
    /// Bytes of the transfer before this request's first byte.
    at: usize,
    len: usize,
}

/// Why a payload's call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkError {
    /// Offset or length not a multiple of the sector size, or beyond the disk, or too long.
    BadArgument(&'static str),
    ReadOnly,
    /// The backend answered with an error, or the device failed.
    Io(String),
}

/// One payload call in progress: a read or write of `len` bytes at `offset`, or a flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    op: u8,
    offset: u64,
    len: usize,
    /// Bytes handed to requests so far.
    submitted: usize,
    /// Requests of this transfer in flight (shadow ids).
    ids: Vec<u16>,
    /// Bytes whose requests completed.
    done: usize,
    error: Option<String>,
}

/// What `step` made of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Wait for an event on the device's port, then step again.
    Waiting,
    Done(Result<usize, BlkError>),
}

pub struct BlkFront {
    /// `device/vbd/<id>`.
    pub dev: String,
    /// The device id, as requests carry it.
    pub handle: u16,
    pub backend: Backend,
    pub geometry: Geometry,
    pub port: u32,
    link: Link,
    ring: FrontRing,
    shadows: Vec<Option<Shadow>>,
    free_pages: Vec<u16>,
    /// Bounce pages in all (numbers 0..pool_pages).
    pool_pages: u16,
    /// Persistent grants: every bounce page's reference (by page number), granted
    /// read-write at the connection (again in every new domain: the old ones are void) and
    /// never ended. None: a grant per request.
    grefs: Option<Vec<u32>>,
    failed: Option<DeviceError>,
    /// Requests sent, and sent again after a resume.
    pub requests: u64,
    pub replayed: u64,
    /// Bounce pages lost to a backend that kept them mapped.
    pub leaked_pages: u32,
}

impl BlkFront {
    /// Connects to device `dev` (`device/vbd/<id>`) with `pool_pages` bounce pages (numbered
    /// 0..pool_pages for `BlkEnv::page`).
    pub fn connect(store: &mut impl Store, env: &mut impl BlkEnv, dev: &str, pool_pages: u16, timeout_ns: u64) -> Result<BlkFront, DeviceError> {
        let id = dev.rsplit('/').next().unwrap_or("");
        let handle = id.parse::<u32>().ok().filter(|&h| h <= u16::MAX as u32).ok_or(DeviceError::BadValue { key: dev.into(), value: id.into(), why: "not a 16-bit device id" })? as u16;
        let mut f = BlkFront {
            dev: dev.into(),
            handle,
            backend: Backend { path: String::new(), domid: 0 },
            geometry: Geometry { sectors: 0, sector_size: 512, read_only: true, flush: Flush::WriteThrough },
            port: 0,
            link: Link::Lost,
            ring: FrontRing::new(BLKIF_RING_SIZE),
            shadows: (0..BLKIF_RING_SIZE).map(|_| None).collect(),
            free_pages: (0..pool_pages).rev().collect(),
            pool_pages,
            grefs: None,
            failed: None,
            requests: 0,
            replayed: 0,
            leaked_pages: 0,
        };
        f.wait_connected(store, env, timeout_ns)?;
        Ok(f)
    }

    /// In a new domain every grant, port and the ring are gone, and the backend is new (at a
    /// new path; it may describe the disk differently): the connection is lost. `advance`
    /// makes it again, in the background; the payload's calls wait meanwhile. Touches
    /// neither xenstore nor the machine. The caller has already forgotten the old domain's
    /// grant references (a new domain's grant table is empty; once for every device).
    pub fn disconnect(&mut self) {
        self.link = Link::Lost;
    }

    /// Whether the connection is made (the ring in use).
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Whether the backend's directory is known (`backend`): connected or connecting to it.
    pub fn backend_found(&self) -> bool {
        self.link != Link::Lost
    }

    /// Moves a connection on as far as the backend's state allows, without waiting (io/blkif.h:
    /// where the backend is; the backend at InitWait, then a fresh ring and port, our keys,
    /// Initialised; the backend's Connected and its description of the disk, then Connected). `Ok(Some(n))`:
    /// connected by this call, and the `n` requests that had no response sent again.
    /// `Ok(None)`: not yet, or connected already. An error fails the device.
    pub fn advance(&mut self, store: &mut impl Store, env: &mut impl BlkEnv, timeout_ns: u64) -> Result<Option<u32>, DeviceError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let done = match self.link.next(store, &self.dev, &mut self.backend, timeout_ns) {
                Ok(Next::Wait | Next::Up) => return Ok(None),
                Ok(Next::Publish) => self.publish(store, env).map(|()| self.link.published()),
                Ok(Next::Finish) => self.finish(store, env),
                Err(e) => Err(e),
            };
            if let Err(e) = done {
                return Err(self.fail(e));
            }
            if self.link.is_up() {
                return self.replay(env).map(Some).map_err(|e| self.fail(e));
            }
        }
    }

    /// `advance` until connected, sleeping on the backend's state in between (at boot, before
    /// the payload runs). Returns the requests sent again.
    pub fn wait_connected(&mut self, store: &mut impl Store, env: &mut impl BlkEnv, timeout_ns: u64) -> Result<u32, DeviceError> {
        loop {
            if let Some(n) = self.advance(store, env, timeout_ns)? {
                return Ok(n);
            }
            if self.link.is_up() {
                return Ok(0);
            }
            self.link.wait(store, &self.backend, timeout_ns);
        }
    }

    /// The backend is at InitWait: a fresh ring and port, our keys, Initialised.
    fn publish(&mut self, store: &mut impl Store, env: &mut impl BlkEnv) -> Result<(), DeviceError> {
        let dev = self.dev.clone();
        env.ring().init();
        self.ring.reset();
        let ring_ref = env.grant_ring(self.backend.domid)?;
        self.port = env.alloc_port(self.backend.domid)?;
        let keys = [("ring-ref", format!("{ring_ref}")), ("event-channel", format!("{}", self.port)), ("protocol", PROTOCOL.into()), ("feature-persistent", "1".into())];
        let writes: Vec<(String, String)> = keys.iter().map(|(k, v)| (format!("{dev}/{k}"), v.clone())).collect();
        store.write_all(&writes).map_err(|why| DeviceError::Store { key: format!("{dev}/ring-ref ..."), why })?;
        xenbus::switch_state(store, &dev, XenbusState::Initialised)
    }

    /// The backend is Connected: its description of the disk, the persistent grants, Connected.
    fn finish(&mut self, store: &mut impl Store, env: &mut impl BlkEnv) -> Result<(), DeviceError> {
        self.geometry = read_geometry(store, &self.backend.path)?;
        // Both ends said 1: blkback keeps each reference it sees mapped (it decided from our
        // key, and says so in its own).
        self.grefs = None;
        if xenbus::read_flag(store, &format!("{}/feature-persistent", self.backend.path))? {
            self.grefs = Some(grant_pages(env, self.backend.domid, 0..self.pool_pages)?);
        }
        xenbus::switch_state(store, &self.dev, XenbusState::Connected)?;
        self.link = Link::Up;
        Ok(())
    }

    /// Whether the bounce pages are granted once for good (persistent grants).
    pub fn persistent(&self) -> bool {
        self.grefs.is_some()
    }

    pub fn failed(&self) -> Option<&DeviceError> {
        self.failed.as_ref()
    }

    /// Gives the device up (a backend that stopped answering): every call fails from now on.
    pub fn mark_failed(&mut self, e: DeviceError) {
        self.fail(e);
    }

    /// Marks the device failed (the caller logs the error once).
    fn fail(&mut self, e: DeviceError) -> DeviceError {
        if self.failed.is_none() {
            self.failed = Some(e.clone());
        }
        e
    }

    /// More bounce pages (numbers `pages`, the next after the pool's, which `BlkEnv::page`
    /// must know from now on): more requests in flight at once. The platform adds them once
    /// the payload is placed (they come from RAM; at connect time only the shim's heap is
    /// known to be free). With persistent grants they are granted now; if that fails, none
    /// is added and the disk goes on with the pages it had.
    pub fn add_pool_pages(&mut self, env: &mut impl BlkEnv, pages: core::ops::Range<u16>) -> Result<(), DeviceError> {
        assert_eq!(pages.start, self.pool_pages, "pages are numbered on from the pool's");
        if let Some(grefs) = &mut self.grefs {
            grefs.extend(grant_pages(env, self.backend.domid, pages.clone())?);
        }
        self.pool_pages = pages.end;
        self.free_pages.extend(pages.rev());
        Ok(())
    }

    /// Requests sent whose responses have not been read.
    pub fn in_flight(&self) -> usize {
        self.shadows.iter().flatten().filter(|s| s.status.is_none()).count()
    }

    /// Checks a call's arguments and starts it. `op`: BLKIF_OP_READ, _WRITE or _FLUSH_DISKCACHE
    /// (a flush: offset and len 0; it becomes whichever flush the backend offers).
    pub fn start(&self, op: u8, offset: u64, len: usize) -> Result<Transfer, BlkError> {
        if let Some(e) = &self.failed {
            return Err(BlkError::Io(format!("{}: failed earlier: {e}", self.dev)));
        }
        let g = &self.geometry;
        match op {
            BLKIF_OP_READ | BLKIF_OP_WRITE => {
                let ss = g.sector_size as u64;
                if !offset.is_multiple_of(ss) || !(len as u64).is_multiple_of(ss) {
                    return Err(BlkError::BadArgument("offset and length must be multiples of the block size"));
                }
                if len == 0 || offset.checked_add(len as u64).is_none_or(|end| end > g.capacity_bytes()) {
                    return Err(BlkError::BadArgument("the range is empty or beyond the disk"));
                }
                if op == BLKIF_OP_WRITE && g.read_only {
                    return Err(BlkError::ReadOnly);
                }
            }
            BLKIF_OP_FLUSH_DISKCACHE => {}
            _ => return Err(BlkError::BadArgument("unknown operation")),
        }
        Ok(Transfer { op, offset, len, submitted: 0, ids: Vec::new(), done: 0, error: None })
    }

    /// Moves a transfer on: reads the responses that came, copies a read's data out of the
    /// bounce pages into `buf`, sends the next requests (a write's data copied from `buf`),
    /// and says whether the call is done. Never blocks.
    pub fn step(&mut self, env: &mut impl BlkEnv, t: &mut Transfer, buf: &mut [u8]) -> Progress {
        if !self.link.is_up() && self.failed.is_none() {
            // Reconnecting: the ring is not in use yet; the call waits for `advance`.
            return Progress::Waiting;
        }
        if let Err(e) = self.poll(env) {
            t.error.get_or_insert(format!("{e}"));
        }
        self.collect(env, t, buf);
        if t.error.is_none() && self.failed.is_none() {
            if t.op == BLKIF_OP_FLUSH_DISKCACHE {
                self.submit_flush(env, t);
            } else {
                self.submit_data(env, t, buf);
            }
        }
        if let (Some(e), None) = (&self.failed, &t.error) {
            t.error = Some(format!("{e}"));
        }
        let finished = match t.op {
            BLKIF_OP_FLUSH_DISKCACHE => t.submitted == 1 && t.ids.is_empty(),
            _ => t.done == t.len,
        };
        if let Some(e) = &t.error {
            // The call ends when none of it is in flight any more (its pages are ours only
            // after the response), or at once when the device failed: no response can be
            // trusted then, and the pages in flight stay with their shadows for good.
            if t.ids.is_empty() || self.failed.is_some() {
                return Progress::Done(Err(BlkError::Io(e.clone())));
            }
            return Progress::Waiting;
        }
        if finished {
            return Progress::Done(Ok(t.len));
        }
        Progress::Waiting
    }

    fn submit_data(&mut self, env: &mut impl BlkEnv, t: &mut Transfer, buf: &[u8]) {
        while t.submitted < t.len {
            let mut len = (t.len - t.submitted).min(MAX_REQUEST_BYTES);
            let Some(id) = self.shadows.iter().position(|s| s.is_none()) else { break };
            if self.ring.free_slots() == 0 {
                break;
            }
            if self.free_pages.len() < len.div_ceil(PAGE_BYTES) {
                if !t.ids.is_empty() || self.in_flight() > 0 {
                    break; // pages come back with the responses
                }
                // Pages leaked to a backend that kept them mapped: smaller requests.
                len = len.min(self.free_pages.len() * PAGE_BYTES);
                if len == 0 {
                    t.error = Some(format!("{}: no bounce pages left (the backend kept {} mapped)", self.dev, self.leaked_pages));
                    break;
                }
            }
            let npages = len.div_ceil(PAGE_BYTES);
            let mut pages = [0u16; BLKIF_MAX_SEGMENTS_PER_REQUEST];
            for p in pages.iter_mut().take(npages) {
                *p = self.free_pages.pop().expect("counted above");
            }
            if t.op == BLKIF_OP_WRITE {
                for (i, &p) in pages[..npages].iter().enumerate() {
                    let from = t.submitted + i * PAGE_BYTES;
                    let n = (len - i * PAGE_BYTES).min(PAGE_BYTES);
                    env.page(p)[..n].copy_from_slice(&buf[from..from + n]);
                }
            }
            let mut req = BlkifRequest { operation: t.op, nr_segments: npages as u8, handle: self.handle, id: id as u64, sector_number: (t.offset + t.submitted as u64) / SECTOR_BYTES, ..Default::default() };
            for i in 0..npages {
                let n = (len - i * PAGE_BYTES).min(PAGE_BYTES);
                req.seg[i].first_sect = 0;
                req.seg[i].last_sect = (n as u64 / SECTOR_BYTES - 1) as u8;
            }
            let shadow = Shadow { req, pages, leaked: 0, status: None, at: t.submitted, len };
            self.shadows[id] = Some(shadow);
            if let Err(e) = self.send(env, id) {
                t.error = Some(format!("{e}"));
                break;
            }
            t.ids.push(id as u16);
            t.submitted += len;
            // Published one by one: the backend starts on the first request while the next
            // pages are copied (a notification only when it asked for one: it sleeps).
            if self.ring.push(env.ring()) {
                env.notify(self.port);
            }
        }
    }

    fn submit_flush(&mut self, env: &mut impl BlkEnv, t: &mut Transfer) {
        if t.submitted > 0 {
            return;
        }
        let op = match self.geometry.flush {
            Flush::WriteThrough => {
                t.submitted = 1;
                return;
            }
            Flush::Diskcache => BLKIF_OP_FLUSH_DISKCACHE,
            Flush::Barrier => BLKIF_OP_WRITE_BARRIER,
        };
        let Some(id) = self.shadows.iter().position(|s| s.is_none()) else { return };
        if self.ring.free_slots() == 0 {
            return;
        }
        let req = BlkifRequest { operation: op, nr_segments: 0, handle: self.handle, id: id as u64, ..Default::default() };
        self.shadows[id] = Some(Shadow { req, pages: [0; BLKIF_MAX_SEGMENTS_PER_REQUEST], leaked: 0, status: None, at: 0, len: 0 });
        if let Err(e) = self.send(env, id) {
            t.error = Some(format!("{e}"));
            return;
        }
        t.ids.push(id as u16);
        t.submitted = 1;
        if self.ring.push(env.ring()) {
            env.notify(self.port);
        }
    }

    /// Grants the shadow's pages (new references each time: after a resume the old ones are
    /// void) and writes its request into the ring (unpublished).
    fn send(&mut self, env: &mut impl BlkEnv, id: usize) -> Result<(), DeviceError> {
        let domid = self.backend.domid;
        let s = self.shadows[id].as_mut().expect("a shadow to send");
        let readonly = s.req.operation == BLKIF_OP_WRITE;
        let n = s.req.nr_segments as usize;
        let refs = match &self.grefs {
            Some(grefs) => Ok(s.pages[..n].iter().map(|&p| grefs[p as usize]).collect()),
            None => grant_each(env, domid, &s.pages[..n], readonly),
        };
        match refs {
            Ok(refs) => s.req.seg[..n].iter_mut().zip(refs).for_each(|(seg, g)| seg.gref = g),
            Err(e) => {
                // The request is not sent: its pages back to the pool.
                let pages = s.pages;
                self.shadows[id] = None;
                self.free_pages.extend_from_slice(&pages[..n]);
                return Err(e);
            }
        }
        let req = s.req;
        let put = self.ring.put_request(env.ring(), &req);
        debug_assert!(put, "callers check for a free slot");
        self.requests += 1;
        Ok(())
    }

    /// Reads every response that came and checks it: an id we did not send (or sent and saw
    /// answered already), or an operation other than the request's, fails the device.
    pub fn poll(&mut self, env: &mut impl BlkEnv) -> Result<(), DeviceError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            let ready = match self.ring.responses_ready(env.ring()) {
                Ok(n) => n,
                Err(e) => return Err(self.fail(DeviceError::Protocol(format!("{e}")))),
            };
            for _ in 0..ready {
                let rsp = self.ring.take_response(env.ring());
                let id = rsp.id;
                let shadow = usize::try_from(id).ok().and_then(|i| self.shadows.get_mut(i)).and_then(|s| s.as_mut()).filter(|s| s.status.is_none());
                let Some(s) = shadow else {
                    return Err(self.fail(DeviceError::Protocol(format!("a response with id {id}, which no request in flight has"))));
                };
                if rsp.operation != s.req.operation {
                    let want = s.req.operation;
                    return Err(self.fail(DeviceError::Protocol(format!("the response to request {id} is for operation {}, the request was {want}", rsp.operation))));
                }
                s.status = Some(rsp.status);
                // Persistent grants stay: the backend keeps them mapped.
                if self.grefs.is_none() {
                    for i in 0..s.req.nr_segments as usize {
                        if !env.end_grant(s.req.seg[i].gref) {
                            // Still mapped by the backend: the page is no longer ours to reuse.
                            s.leaked |= 1 << i;
                            self.leaked_pages += 1;
                        }
                    }
                }
            }
            match self.ring.final_check(env.ring()) {
                Ok(true) => continue,
                Ok(false) => return Ok(()),
                Err(e) => return Err(self.fail(DeviceError::Protocol(format!("{e}")))),
            }
        }
    }

    /// Takes the answered requests of `t` out of the shadows: a read's data into `buf`, the
    /// pages back to the pool, an error status into the transfer.
    fn collect(&mut self, env: &mut impl BlkEnv, t: &mut Transfer, buf: &mut [u8]) {
        let mut i = 0;
        while i < t.ids.len() {
            let id = t.ids[i] as usize;
            let answered = self.shadows[id].as_ref().is_some_and(|s| s.status.is_some());
            if !answered {
                i += 1;
                continue;
            }
            let s = self.shadows[id].take().expect("checked");
            t.ids.swap_remove(i);
            let status = s.status.unwrap_or(BLKIF_RSP_ERROR);
            let flush = matches!(s.req.operation, BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER);
            if status == BLKIF_RSP_OKAY {
                if s.req.operation == BLKIF_OP_READ {
                    for k in 0..s.req.nr_segments as usize {
                        let p = s.pages[k];
                        let n = (s.len - k * PAGE_BYTES).min(PAGE_BYTES);
                        let from = s.at + k * PAGE_BYTES;
                        buf[from..from + n].copy_from_slice(&env.page(p)[..n]);
                    }
                }
                t.done += s.len;
            } else if flush && (status == BLKIF_RSP_EOPNOTSUPP || status == BLKIF_RSP_ERROR) {
                // As Linux: a backend that cannot flush after all writes through; the flush
                // is done (there is nothing to flush), and none is sent again.
                self.geometry.flush = Flush::WriteThrough;
            } else {
                t.error.get_or_insert(format!("{}: the backend answered status {status} to the {} of {} bytes at byte {}", self.dev, op_name(s.req.operation), s.len, s.req.sector_number * SECTOR_BYTES));
            }
            self.free_pages.extend((0..s.req.nr_segments as usize).filter(|k| s.leaked & (1 << k) == 0).map(|k| s.pages[k]));
        }
    }

    /// Before a suspend: reads the responses that came. Returns the requests still in flight
    /// (the caller waits on the port until none, within a bound).
    pub fn drain(&mut self, env: &mut impl BlkEnv) -> usize {
        if self.link.is_up() {
            let _ = self.poll(env);
        }
        self.in_flight()
    }

    /// Just connected: sends every request that had no response again, with new grants, in
    /// disk order (none at boot). A request now beyond the disk fails. Returns how many.
    fn replay(&mut self, env: &mut impl BlkEnv) -> Result<u32, DeviceError> {
        let mut pending: Vec<usize> = (0..self.shadows.len()).filter(|&i| self.shadows[i].as_ref().is_some_and(|s| s.status.is_none())).collect();
        pending.sort_by_key(|&i| self.shadows[i].as_ref().map(|s| s.req.sector_number));
        let mut n = 0;
        for id in pending {
            let s = self.shadows[id].as_mut().expect("pending");
            let end = s.req.sector_number * SECTOR_BYTES + s.len as u64;
            let data = matches!(s.req.operation, BLKIF_OP_READ | BLKIF_OP_WRITE);
            if data && end > self.geometry.capacity_bytes() {
                s.status = Some(BLKIF_RSP_ERROR);
                continue;
            }
            if !data && self.geometry.flush == Flush::WriteThrough {
                // The new backend has nothing to flush.
                s.status = Some(BLKIF_RSP_OKAY);
                continue;
            }
            if !data {
                s.req.operation = if self.geometry.flush == Flush::Diskcache { BLKIF_OP_FLUSH_DISKCACHE } else { BLKIF_OP_WRITE_BARRIER };
            }
            self.send(env, id)?;
            n += 1;
        }
        self.replayed += n as u64;
        if n > 0 && self.ring.push(env.ring()) {
            env.notify(self.port);
        }
        Ok(n)
    }

    /// At poweroff: tell the backend we are going.
    pub fn close(&mut self, store: &mut impl Store, timeout_ns: u64) -> Result<(), DeviceError> {
        xenbus::close(store, &self.dev, &self.backend, timeout_ns)
    }
}

/// Grants `pages` to `domid` (read-only or not), all or none: on a failure the grants made so
/// far are ended.
fn grant_each(env: &mut impl BlkEnv, domid: u16, pages: &[u16], readonly: bool) -> Result<Vec<u32>, DeviceError> {
    let mut refs = Vec::with_capacity(pages.len());
    for &page in pages {
        match env.grant_page(page, domid, readonly) {
            Ok(g) => refs.push(g),
            Err(e) => {
                for g in refs {
                    env.end_grant(g);
                }
                return Err(e);
            }
        }
    }
    Ok(refs)
}

/// Persistent grants of the bounce pages `pages` (read-write), all or none.
fn grant_pages(env: &mut impl BlkEnv, domid: u16, pages: core::ops::Range<u16>) -> Result<Vec<u32>, DeviceError> {
    grant_each(env, domid, &pages.collect::<Vec<u16>>(), false)
}

fn op_name(op: u8) -> &'static str {
    match op {
        BLKIF_OP_READ => "read",
        BLKIF_OP_WRITE => "write",
        BLKIF_OP_FLUSH_DISKCACHE => "flush",
        BLKIF_OP_WRITE_BARRIER => "barrier",
        _ => "operation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xen::front_ring::tests::MemRing;
    use crate::xen::xenbus::tests::FakeStore;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;
    use alloc::vec;

    const DEV: &str = "device/vbd/51712";
    const BE: &str = "/local/domain/0/backend/vbd/7/51712";

    /// The backend's side: a disk in memory, the grant table as the backend sees it, and the
    /// misbehaviour a test asks for.
    struct Fake {
        ring: MemRing<BlkifRequest, BlkifResponse>,
        pages: Vec<[u8; PAGE_BYTES]>,
        /// gref -> (page, readonly)
        grants: BTreeMap<u32, (u16, bool)>,
        next_gref: u32,
        /// Grants the backend keeps mapped after answering.
        keep_mapped: Vec<u32>,
        disk: Vec<u8>,
        notified: u32,
        ports: u32,
        /// Requests the backend has read and not answered (it answers on `serve`).
        backend_cons: u32,
        /// Flushes the backend saw.
        flushes: u32,
        writes_seen: u32,
        /// Grant references the fake table holds at most.
        grant_limit: usize,
    }

    impl Fake {
        fn new(disk_bytes: usize, pool: usize) -> Fake {
            Fake { ring: MemRing::new(BLKIF_RING_SIZE as usize), pages: vec![[0; PAGE_BYTES]; pool], grants: BTreeMap::new(), next_gref: 8, keep_mapped: vec![], disk: vec![0; disk_bytes], notified: 0, ports: 0, backend_cons: 0, flushes: 0, writes_seen: 0, grant_limit: 40 }
        }

        /// Answers up to `n` requests, in order, as blkback would.
        fn serve(&mut self, n: usize) {
            for _ in 0..n {
                if self.backend_cons == self.ring.req_prod {
                    return;
                }
                let req = self.ring.reqs[(self.backend_cons % BLKIF_RING_SIZE) as usize];
                self.backend_cons += 1;
                let mut status = BLKIF_RSP_OKAY;
                let mut at = (req.sector_number * SECTOR_BYTES) as usize;
                match req.operation {
                    BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => self.flushes += 1,
                    op => {
                        for seg in &req.seg[..req.nr_segments as usize] {
                            let Some(&(page, ro)) = self.grants.get(&seg.gref) else {
                                status = BLKIF_RSP_ERROR;
                                break;
                            };
                            let from = seg.first_sect as usize * 512;
                            let n = (seg.last_sect as usize + 1) * 512 - from;
                            if op == BLKIF_OP_WRITE {
                                self.disk[at..at + n].copy_from_slice(&self.pages[page as usize][from..from + n]);
                            } else {
                                assert!(!ro, "a read into a read-only grant");
                                self.pages[page as usize][from..from + n].copy_from_slice(&self.disk[at..at + n]);
                            }
                            at += n;
                        }
                        if op == BLKIF_OP_WRITE {
                            self.writes_seen += 1;
                        }
                    }
                }
                self.respond(req.id, req.operation, status);
            }
        }

        fn respond(&mut self, id: u64, operation: u8, status: i16) {
            let slot = (self.ring.rsp_prod % BLKIF_RING_SIZE) as usize;
            self.ring.rsps[slot] = BlkifResponse { id, operation, status, ..Default::default() };
            self.ring.rsp_prod += 1;
        }

        /// A new domain: an empty grant table, a ring the backend has not seen.
        fn new_domain(&mut self) {
            self.grants.clear();
            self.next_gref = 8;
            self.backend_cons = 0;
        }
    }

    impl BlkEnv for Fake {
        type Ring = MemRing<BlkifRequest, BlkifResponse>;
        fn ring(&mut self) -> &mut Self::Ring {
            &mut self.ring
        }
        fn grant_ring(&mut self, _domid: u16) -> Result<u32, DeviceError> {
            self.next_gref += 1;
            Ok(self.next_gref - 1)
        }
        fn grant_page(&mut self, page: u16, domid: u16, readonly: bool) -> Result<u32, DeviceError> {
            assert_eq!(domid, 7);
            if self.grants.len() >= self.grant_limit {
                return Err(DeviceError::Resources("grant references".into()));
            }
            let g = self.next_gref;
            self.next_gref += 1;
            self.grants.insert(g, (page, readonly));
            Ok(g)
        }
        fn end_grant(&mut self, gref: u32) -> bool {
            if self.keep_mapped.contains(&gref) {
                return false;
            }
            self.grants.remove(&gref).is_some()
        }
        fn page(&mut self, page: u16) -> &mut [u8; PAGE_BYTES] {
            &mut self.pages[page as usize]
        }
        fn alloc_port(&mut self, _domid: u16) -> Result<u32, DeviceError> {
            self.ports += 1;
            Ok(10 + self.ports)
        }
        fn notify(&mut self, _port: u32) {
            self.notified += 1;
        }
    }

    /// xenstore as libxl and blkback leave it, with blkback following our state.
    fn store(sectors: &'static str) -> FakeStore {
        let mut s = FakeStore::new(&[(&format!("{DEV}/backend"), BE), (&format!("{DEV}/backend-id"), "7"), (&format!("{DEV}/state"), "1"), (&format!("{BE}/state"), "2")]);
        s.keys.insert("test/sectors".into(), sectors.into());
        s.on_wait = |k, _| {
            if k.get(&format!("{DEV}/state")).map(|v| v.as_str()) == Some("3") && k.get(&format!("{BE}/state")).map(|v| v.as_str()) == Some("2") {
                let sectors = k["test/sectors"].clone();
                k.insert(format!("{BE}/sectors"), sectors);
                k.insert(format!("{BE}/sector-size"), "512".into());
                k.insert(format!("{BE}/info"), "0".into());
                k.insert(format!("{BE}/feature-flush-cache"), "1".into());
                if k.contains_key("test/persistent") {
                    k.insert(format!("{BE}/feature-persistent"), "1".into());
                }
                k.insert(format!("{BE}/state"), "4".into());
            }
        };
        s
    }

    fn connected(disk: usize, pool: u16) -> (FakeStore, Fake, BlkFront) {
        let mut s = store("2048");
        let mut fake = Fake::new(disk, pool as usize);
        let f = BlkFront::connect(&mut s, &mut fake, DEV, pool, 1_000_000_000).expect("connects");
        (s, fake, f)
    }

    /// A new domain's connection, waited for (as at boot).
    fn reconnect(f: &mut BlkFront, s: &mut FakeStore, fake: &mut Fake) -> Result<u32, DeviceError> {
        f.disconnect();
        f.wait_connected(s, fake, 1_000_000_000)
    }

    /// Runs a call to the end, the backend answering `per_round` requests each time we wait.
    fn run(f: &mut BlkFront, fake: &mut Fake, op: u8, offset: u64, buf: &mut [u8], per_round: usize) -> Result<usize, BlkError> {
        let mut t = f.start(op, offset, buf.len())?;
        for _ in 0..10_000 {
            match f.step(fake, &mut t, buf) {
                Progress::Done(r) => return r,
                Progress::Waiting => fake.serve(per_round),
            }
        }
        panic!("the call never finished");
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn the_handshake_publishes_our_keys_and_reads_the_disk() {
        let (s, fake, f) = connected(1 << 20, 32);
        assert_eq!(f.handle, 51712);
        assert_eq!(f.geometry, Geometry { sectors: 2048, sector_size: 512, read_only: false, flush: Flush::Diskcache });
        for (k, v) in [("ring-ref", "8"), ("event-channel", "11"), ("protocol", "x86_64-abi"), ("state", "4")] {
            assert_eq!(s.keys[&format!("{DEV}/{k}")], v, "{k}");
        }
        // Initialised, then Connected only after the backend's Connected.
        let states: Vec<&str> = s.writes.iter().filter(|(k, _)| k.ends_with("/state")).map(|(_, v)| v.as_str()).collect();
        assert_eq!(states, ["3", "4"]);
        assert_eq!(fake.ring.req_event, 1, "the ring was initialised");
    }

    #[test]
    fn writes_and_reads_of_any_size_arrive_whole() {
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        // 100 KiB: three requests of 44, 44 and 12 KiB; the pool (32 pages) holds two at once.
        let data = pattern(100 << 10, 3);
        let mut buf = data.clone();
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_WRITE, 4096, &mut buf, 1), Ok(100 << 10));
        assert_eq!(&fake.disk[4096..4096 + (100 << 10)], &data[..]);
        assert_eq!(fake.writes_seen, 3);
        let mut back = vec![0u8; 100 << 10];
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_READ, 4096, &mut back, 2), Ok(100 << 10));
        assert_eq!(back, data);
        // One sector at the very end of the disk.
        let mut last = pattern(512, 9);
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_WRITE, (1 << 20) - 512, &mut last, 1), Ok(512));
        assert_eq!(f.in_flight(), 0);
        assert_eq!(f.free_pages.len(), 32, "every bounce page back in the pool");
        // The grants are all ended.
        assert!(fake.grants.is_empty());
    }

    #[test]
    fn added_pages_put_a_whole_mebibyte_in_flight_at_once() {
        let mut s = store("8192");
        let mut fake = Fake::new(4 << 20, 32 + 320);
        fake.grant_limit = 400;
        let mut f = BlkFront::connect(&mut s, &mut fake, DEV, 32, 1_000_000_000).expect("connects");
        let data = pattern(1 << 20, 5);
        let mut buf = data.clone();
        // With the heap's 32 pages, two requests of 11 pages at a time (88 KiB).
        let mut t = f.start(BLKIF_OP_WRITE, 0, buf.len()).unwrap();
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        assert_eq!(f.in_flight(), 2);
        assert_eq!(run_to_end(&mut f, &mut fake, &mut t, &mut buf), Ok(1 << 20));
        f.add_pool_pages(&mut fake, 32..352).unwrap();
        // With 352, all 24 requests of a mebibyte (23 of 11 pages, one of 3) at once.
        let mut t = f.start(BLKIF_OP_WRITE, 1 << 20, buf.len()).unwrap();
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        assert_eq!(f.in_flight(), 24);
        assert_eq!(run_to_end(&mut f, &mut fake, &mut t, &mut buf), Ok(1 << 20));
        assert_eq!(&fake.disk[1 << 20..2 << 20], &data[..]);
        let mut back = vec![0u8; 1 << 20];
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_READ, 1 << 20, &mut back, 64), Ok(1 << 20));
        assert_eq!(back, data);
        assert_eq!(f.free_pages.len(), 352, "every page, old and added, back in the pool");
        assert!(fake.grants.is_empty());
    }

    #[test]
    fn persistent_grants_are_made_once_per_page_and_again_in_a_new_domain() {
        let mut s = store("2048");
        s.keys.insert("test/persistent".into(), "1".into());
        let mut fake = Fake::new(1 << 20, 40);
        fake.grant_limit = 100;
        let mut f = BlkFront::connect(&mut s, &mut fake, DEV, 8, 1_000_000_000).expect("connects");
        assert_eq!(s.keys[&format!("{DEV}/feature-persistent")], "1");
        assert!(f.persistent());
        // The 8 pages, all writable; 32 more added later.
        assert_eq!((fake.grants.len(), fake.grants.values().filter(|(_, ro)| *ro).count()), (8, 0));
        f.add_pool_pages(&mut fake, 8..40).unwrap();
        assert_eq!(fake.grants.len(), 40);
        let data = pattern(300 << 10, 4);
        let mut buf = data.clone();
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_WRITE, 0, &mut buf, 2), Ok(300 << 10));
        let mut back = vec![0u8; 300 << 10];
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_READ, 0, &mut back, 2), Ok(300 << 10));
        assert_eq!(back, data);
        // No grant made or ended per request: the same 40 references.
        assert_eq!((fake.grants.len(), fake.next_gref), (40, 8 + 1 + 40), "the ring and the pages");
        assert_eq!(f.leaked_pages, 0);
        // A request in flight at a suspend; the new domain's table is empty: all pages are
        // granted again and the request goes out with the new references.
        let mut t = f.start(BLKIF_OP_WRITE, 0, 4096).unwrap();
        assert_eq!(f.step(&mut fake, &mut t, &mut buf[..4096]), Progress::Waiting);
        fake.new_domain();
        s.keys.insert(format!("{BE}/state"), "2".into());
        s.keys.insert(format!("{DEV}/state"), "1".into());
        assert_eq!(reconnect(&mut f, &mut s, &mut fake), Ok(1));
        assert_eq!(fake.grants.len(), 40);
        assert!(fake.grants.contains_key(&fake.ring.reqs[0].seg[0].gref));
        assert_eq!(run_to_end(&mut f, &mut fake, &mut t, &mut buf[..4096]), Ok(4096));
    }

    #[test]
    fn without_the_backends_word_grants_are_per_request() {
        let (s, fake, f) = connected(1 << 20, 32);
        assert_eq!(s.keys[&format!("{DEV}/feature-persistent")], "1");
        assert!(!f.persistent());
        assert!(fake.grants.is_empty(), "no page granted before a request");
    }

    fn run_to_end(f: &mut BlkFront, fake: &mut Fake, t: &mut Transfer, buf: &mut [u8]) -> Result<usize, BlkError> {
        for _ in 0..10_000 {
            fake.serve(64);
            if let Progress::Done(r) = f.step(fake, t, buf) {
                return r;
            }
        }
        panic!("the call never finished");
    }

    #[test]
    fn bad_arguments_are_refused_before_anything_is_sent() {
        let (_s, fake, f) = connected(1 << 20, 32);
        assert!(matches!(f.start(BLKIF_OP_WRITE, 100, 512), Err(BlkError::BadArgument(_))));
        assert!(matches!(f.start(BLKIF_OP_WRITE, 0, 100), Err(BlkError::BadArgument(_))));
        assert!(matches!(f.start(BLKIF_OP_READ, (1 << 20) - 512, 1024), Err(BlkError::BadArgument(_))));
        assert!(matches!(f.start(BLKIF_OP_READ, u64::MAX - 511, 512), Err(BlkError::BadArgument(_))));
        assert!(matches!(f.start(BLKIF_OP_READ, 0, 0), Err(BlkError::BadArgument(_))));
        assert!(matches!(f.start(9, 0, 512), Err(BlkError::BadArgument(_))));
        assert_eq!(fake.ring.req_prod, 0);
    }

    #[test]
    fn a_flush_goes_as_the_backend_offers_it() {
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_FLUSH_DISKCACHE, 0, &mut [], 1), Ok(0));
        assert_eq!(fake.flushes, 1);
        assert_eq!(fake.ring.reqs[0].operation, BLKIF_OP_FLUSH_DISKCACHE);
        f.geometry.flush = Flush::Barrier;
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_FLUSH_DISKCACHE, 0, &mut [], 1), Ok(0));
        assert_eq!(fake.ring.reqs[1].operation, BLKIF_OP_WRITE_BARRIER);
        // Write-through: nothing to send.
        f.geometry.flush = Flush::WriteThrough;
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_FLUSH_DISKCACHE, 0, &mut [], 1), Ok(0));
        assert_eq!(fake.ring.req_prod, 2);
    }

    #[test]
    fn a_backend_error_fails_the_call_not_the_device() {
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        let mut buf = pattern(8192, 1);
        let mut t = f.start(BLKIF_OP_WRITE, 0, 8192).unwrap();
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        let req = fake.ring.reqs[0];
        fake.backend_cons = 1;
        fake.respond(req.id, BLKIF_OP_WRITE, BLKIF_RSP_ERROR);
        let Progress::Done(Err(BlkError::Io(why))) = f.step(&mut fake, &mut t, &mut buf) else { panic!() };
        assert!(why.contains("status -1 to the write of 8192 bytes at byte 0"), "{why}");
        assert!(f.failed().is_none());
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_WRITE, 0, &mut buf, 1), Ok(8192));
    }

    #[test]
    fn hostile_responses_fail_the_device_with_one_clear_error() {
        // An id no request has.
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        let mut buf = pattern(4096, 1);
        let mut t = f.start(BLKIF_OP_WRITE, 0, 4096).unwrap();
        f.step(&mut fake, &mut t, &mut buf);
        fake.respond(17, BLKIF_OP_WRITE, 0);
        let Progress::Done(Err(BlkError::Io(why))) = f.step(&mut fake, &mut t, &mut buf) else { panic!("a bad id ends the call") };
        assert!(why.contains("id 17, which no request in flight has"), "{why}");
        assert!(f.failed().is_some());
        assert!(matches!(f.start(BLKIF_OP_READ, 0, 512), Err(BlkError::Io(_))), "a failed device refuses further calls");

        // The same response twice.
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        let mut buf = pattern(48 << 10, 1);
        let mut t = f.start(BLKIF_OP_WRITE, 0, 48 << 10).unwrap();
        f.step(&mut fake, &mut t, &mut buf);
        assert_eq!(f.in_flight(), 2);
        fake.respond(0, BLKIF_OP_WRITE, 0);
        fake.respond(0, BLKIF_OP_WRITE, 0);
        assert!(matches!(f.step(&mut fake, &mut t, &mut buf), Progress::Done(Err(_)) | Progress::Waiting));
        assert!(f.failed().is_some_and(|e| e.to_string().contains("which no request in flight has")), "{:?}", f.failed());

        // More responses than requests; an operation that is not the request's.
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        let mut t = f.start(BLKIF_OP_WRITE, 0, 4096).unwrap();
        f.step(&mut fake, &mut t, &mut buf[..4096]);
        fake.ring.rsp_prod = 5;
        f.step(&mut fake, &mut t, &mut buf[..4096]);
        assert!(f.failed().is_some_and(|e| e.to_string().contains("claims 5 responses")), "{:?}", f.failed());
        let (_s, mut fake, mut f) = connected(1 << 20, 32);
        let mut t = f.start(BLKIF_OP_WRITE, 0, 4096).unwrap();
        f.step(&mut fake, &mut t, &mut buf[..4096]);
        fake.respond(0, BLKIF_OP_READ, 0);
        f.step(&mut fake, &mut t, &mut buf[..4096]);
        assert!(f.failed().is_some_and(|e| e.to_string().contains("for operation 0, the request was 1")), "{:?}", f.failed());
    }

    #[test]
    fn a_page_the_backend_keeps_mapped_is_not_reused() {
        let (_s, mut fake, mut f) = connected(1 << 20, 2);
        fake.keep_mapped = vec![9];
        let mut buf = pattern(8192, 4);
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_WRITE, 0, &mut buf, 1), Ok(8192));
        assert_eq!((f.leaked_pages, f.free_pages.len()), (1, 1));
        // One page left: calls still work, a page at a time.
        let mut back = vec![0; 8192];
        assert_eq!(run(&mut f, &mut fake, BLKIF_OP_READ, 0, &mut back, 1), Ok(8192));
        assert_eq!(back, buf);
    }

    #[test]
    fn bad_geometry_is_refused_at_connect() {
        for (sectors, size, why) in [("0", "512", "out of range"), ("99999999999999999", "512", "out of range"), ("x", "512", "not a decimal"), ("2048", "1000", "power of two"), ("2049", "4096", "whole number")] {
            let mut s = store(sectors);
            s.on_wait = |k, _| {
                if k.get(&format!("{DEV}/state")).map(|v| v.as_str()) == Some("3") {
                    let sectors = k["test/sectors"].clone();
                    let size = k["test/size"].clone();
                    k.insert(format!("{BE}/sectors"), sectors);
                    k.insert(format!("{BE}/sector-size"), size);
                    k.insert(format!("{BE}/state"), "4".into());
                }
            };
            s.keys.insert("test/size".into(), size.into());
            let mut fake = Fake::new(1 << 20, 4);
            let e = BlkFront::connect(&mut s, &mut fake, DEV, 4, 1_000_000_000).err().expect("refused");
            assert!(e.to_string().contains(why), "{sectors}/{size}: {e}");
        }
        // A backend that never leaves InitWait.
        let mut s = store("2048");
        s.on_wait = |_, _| {};
        let mut fake = Fake::new(1 << 20, 4);
        let e = BlkFront::connect(&mut s, &mut fake, DEV, 4, 500_000_000).err().expect("gives up");
        assert!(matches!(e, DeviceError::BackendTimeout { state: Some(XenbusState::InitWait), .. }), "{e}");
    }

    #[test]
    fn requests_in_flight_at_a_suspend_are_sent_again_in_the_new_domain_once() {
        let (mut s, mut fake, mut f) = connected(1 << 20, 32);
        let data = pattern(100 << 10, 7);
        let mut buf = data.clone();
        let mut t = f.start(BLKIF_OP_WRITE, 8192, buf.len()).unwrap();
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        // Three requests (44 + 44 + 12 KiB) in flight; the backend finishes one, then the
        // domain is saved.
        assert_eq!(f.in_flight(), 3);
        fake.serve(1);
        assert_eq!(f.drain(&mut fake), 2);
        // Restored: a new domain; libxl re-created the directories; blkback is at InitWait.
        fake.new_domain();
        s.keys.insert(format!("{BE}/state"), "2".into());
        s.keys.insert(format!("{DEV}/state"), "1".into());
        let before = fake.disk.clone();
        assert_eq!(reconnect(&mut f, &mut s, &mut fake), Ok(2));
        assert_eq!((f.replayed, f.port), (2, 12));
        // Sent again with new grants, on the new ring from its first slot.
        assert_eq!((fake.ring.req_prod, fake.ring.reqs[0].sector_number), (2, (8192 + (44 << 10)) / 512));
        // The call goes on as if nothing happened, and finishes once.
        let mut result = None;
        for _ in 0..100 {
            match f.step(&mut fake, &mut t, &mut buf) {
                Progress::Done(r) => {
                    result = Some(r);
                    break;
                }
                Progress::Waiting => fake.serve(1),
            }
        }
        assert_eq!(result, Some(Ok(100 << 10)));
        assert_eq!(&fake.disk[8192..8192 + (100 << 10)], &data[..]);
        assert_ne!(before, fake.disk);
        assert_eq!(f.in_flight(), 0);
    }

    #[test]
    fn a_new_domains_connection_is_made_in_the_background_while_calls_wait() {
        let (mut s, mut fake, mut f) = connected(1 << 20, 32);
        let data = pattern(100 << 10, 9);
        let mut buf = data.clone();
        let mut t = f.start(BLKIF_OP_WRITE, 0, buf.len()).unwrap();
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        assert_eq!(f.in_flight(), 3);
        // Restored; blkback is still being set up (Initialising).
        fake.new_domain();
        s.keys.insert(format!("{BE}/state"), "1".into());
        s.keys.insert(format!("{DEV}/state"), "1".into());
        let (req_prod, notified) = (fake.ring.req_prod, fake.notified);
        f.disconnect();
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(None));
        assert!(!f.is_up());
        assert_eq!(f.backend.path, BE);
        // The call waits without touching the ring; a suspend now finds its 3 requests
        // unanswered, without reading a ring the backend has not seen.
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        assert_eq!(f.drain(&mut fake), 3);
        assert_eq!((fake.ring.req_prod, fake.notified), (req_prod, notified));
        // blkback at InitWait: our keys go out, Initialised; nothing is sent yet.
        s.keys.insert(format!("{BE}/state"), "2".into());
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(None));
        assert_eq!((s.keys[&format!("{DEV}/state")].as_str(), fake.ring.req_prod), ("3", 0));
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Waiting);
        // blkback Connected (the fake store's backend follows us when we would wait): the
        // three requests go out again, and the call finishes once.
        s.wait_change("anything", u64::MAX);
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(Some(3)));
        assert!(f.is_up());
        assert_eq!(f.advance(&mut s, &mut fake, 1_000_000_000), Ok(None));
        let r = loop {
            match f.step(&mut fake, &mut t, &mut buf) {
                Progress::Done(r) => break r,
                Progress::Waiting => fake.serve(1),
            }
        };
        assert_eq!(r, Ok(100 << 10));
        assert_eq!(&fake.disk[..100 << 10], &data[..]);

        // Another new domain whose backend never gets there: the device fails once the
        // connection's time is up, and a call waiting for it ends with the reason.
        let mut t = f.start(BLKIF_OP_READ, 0, 4096).unwrap();
        fake.new_domain();
        s.keys.insert(format!("{BE}/state"), "1".into());
        f.disconnect();
        assert_eq!(f.advance(&mut s, &mut fake, 500_000_000), Ok(None));
        s.now += 600_000_000;
        let e = f.advance(&mut s, &mut fake, 500_000_000).unwrap_err();
        assert!(matches!(e, DeviceError::BackendTimeout { state: Some(XenbusState::Initialising), .. }), "{e}");
        let mut small = [0u8; 4096];
        assert!(matches!(f.step(&mut fake, &mut t, &mut small), Progress::Done(Err(BlkError::Io(_)))));
        assert!(f.failed().is_some());
    }

    #[test]
    fn a_checkpoint_changes_nothing_and_a_smaller_disk_fails_what_no_longer_fits() {
        // Cancelled suspend: responses that came meanwhile are simply read.
        let (mut s, mut fake, mut f) = connected(1 << 20, 32);
        let mut buf = pattern(4096, 2);
        let mut t = f.start(BLKIF_OP_WRITE, (1 << 20) - 4096, 4096).unwrap();
        f.step(&mut fake, &mut t, &mut buf);
        assert_eq!(f.drain(&mut fake), 1);
        fake.serve(1);
        assert_eq!(f.step(&mut fake, &mut t, &mut buf), Progress::Done(Ok(4096)));
        // New domain, and the disk is now 512 KiB: the write at its old end cannot be sent.
        let mut t = f.start(BLKIF_OP_WRITE, (1 << 20) - 4096, 4096).unwrap();
        f.step(&mut fake, &mut t, &mut buf);
        fake.new_domain();
        s.keys.insert("test/sectors".into(), "1024".into());
        s.keys.insert(format!("{BE}/state"), "2".into());
        assert_eq!(reconnect(&mut f, &mut s, &mut fake), Ok(0));
        assert_eq!(f.geometry.sectors, 1024);
        assert!(matches!(f.step(&mut fake, &mut t, &mut buf), Progress::Done(Err(BlkError::Io(_)))));
    }
}
