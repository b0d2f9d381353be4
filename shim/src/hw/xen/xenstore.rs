//! The xenstore client over the shared ring (io/xs_wire.h). Requests are synchronous and are
//! only made with interrupts off (boot, event handler), so a reply is never awaited twice.
//! Watch events that arrive between replies are queued for the caller. A request whose reply
//! carries nothing the shim needs (a feature node, a watch) may be posted instead: sent
//! without waiting, its reply read later (an error logged then).
use super::hypercall::XenHypercalls;
use super::shared_info::wait_on_port;
use super::shared_ring::{SharedBytes, SharedIdx};
use xshim_shim::layout::timeouts::{RING_POLL_NS, XENSTORE_REQUEST_NS};
use xshim_shim::xen::control::XsTransactions;
use xshim_shim::xen::frames::EvtchnPort;
use xshim_shim::xen::hypercalls::Hypercalls;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use xshim_shim::xen::abi::xs_wire::{XenstoreDomainInterface, XsType, XENSTORE_RING_SIZE};
use xshim_shim::xen::ring;
use xshim_shim::xen::xenbus::Store;
use xshim_shim::xen::xenstore_wire::{encode_request, parse_tx_id, reply_text, Message, Reassembler, XsError};

fn notify(port: EvtchnPort) {
    // A failed notify shows up as a request timeout.
    let _ = XenHypercalls.evtchn_send(port);
}

pub struct Xenstore {
    page: *mut XenstoreDomainInterface,
    pub port: EvtchnPort,
    next_req_id: u32,
    incoming: Reassembler,
    pub watch_events: VecDeque<(String, String)>,
    /// Requests posted and not yet answered: id, and what to say if one fails.
    posted: VecDeque<(u32, &'static str)>,
}

// SAFETY: used under the platform lock on one vCPU.
unsafe impl Send for Xenstore {}

impl Xenstore {
    /// # Safety
    /// `page` must be the identity-mapped xenstore ring page of this domain.
    pub unsafe fn new(page: u64, port: EvtchnPort) -> Xenstore {
        Xenstore { page: page as *mut XenstoreDomainInterface, port, next_req_id: 1, incoming: Reassembler::default(), watch_events: VecDeque::new(), posted: VecDeque::new() }
    }

    /// After a restore: the ring page was cleared by the toolstack and the port is new.
    pub fn reconnect(&mut self, port: EvtchnPort) {
        self.port = port;
        self.incoming.clear();
        self.posted.clear();
        let (_, _, rsp_cons, rsp_prod) = self.indices();
        // Replies to requests of the old domain cannot come; start from the current state.
        rsp_cons.set(rsp_prod.get());
    }

    fn indices(&self) -> (SharedIdx, SharedIdx, SharedIdx, SharedIdx) {
        let p = self.page;
        // SAFETY: raw field projections of the mapped ring page.
        unsafe { (SharedIdx(&raw mut (*p).req_prod), SharedIdx(&raw mut (*p).req_cons), SharedIdx(&raw mut (*p).rsp_cons), SharedIdx(&raw mut (*p).rsp_prod)) }
    }

    fn send_bytes(&mut self, mut bytes: &[u8], deadline: u64) -> Result<(), XsError> {
        let p = self.page;
        // SAFETY: as indices().
        let mut data = SharedBytes { base: unsafe { (&raw mut (*p).req) as *mut u8 }, size: XENSTORE_RING_SIZE as u32 };
        while !bytes.is_empty() {
            let (req_prod, req_cons, _, _) = self.indices();
            let (n, new_prod) = ring::produce(&mut data, req_prod.get(), req_cons.get(), bytes)?;
            if n > 0 {
                req_prod.set(new_prod);
                notify(self.port);
                bytes = &bytes[n..];
                continue;
            }
            if super::time::xen_system_time() > deadline {
                return Err(XsError::Timeout);
            }
            wait_on_port(self.port, RING_POLL_NS);
        }
        Ok(())
    }

    /// Moves every available reply byte into the reassembler.
    fn pull(&mut self) -> Result<(), XsError> {
        let p = self.page;
        // SAFETY: as indices().
        let data = SharedBytes { base: unsafe { (&raw mut (*p).rsp) as *mut u8 }, size: XENSTORE_RING_SIZE as u32 };
        let (_, _, rsp_cons, rsp_prod) = self.indices();
        let mut buf = [0u8; XENSTORE_RING_SIZE];
        let (n, new_cons) = ring::consume(&data, rsp_prod.get(), rsp_cons.get(), &mut buf).inspect_err(|_| {
            // Hostile indices: drop what is there rather than read past the ring.
            rsp_cons.set(rsp_prod.get());
        })?;
        if n > 0 {
            rsp_cons.set(new_cons);
            notify(self.port);
            self.incoming.push(&buf[..n]);
        }
        Ok(())
    }

    fn queue_watch_event(&mut self, msg: &Message) {
        match msg.watch_event() {
            Ok(ev) => self.watch_events.push_back(ev),
            Err(e) => log::warn!("xenstore: ignoring {e}"),
        }
    }

    /// A reply to a posted request: settled (its error logged). False if it is not one.
    fn settle_posted(&mut self, m: &Message) -> bool {
        let Some((_, what)) = self.posted.iter().position(|&(id, _)| id == m.header.req_id).and_then(|i| self.posted.remove(i)) else { return false };
        if let Some(err) = m.error_text() {
            log::warn!("xenstore: {what}: {err}");
        }
        true
    }

    /// Reads watch events (and replies to posted requests) that arrived while no request
    /// was in flight.
    pub fn poll_watches(&mut self) {
        if let Err(e) = self.pull() {
            log::warn!("xenstore: {e}");
        }
        loop {
            match self.incoming.next_message() {
                Ok(Some(m)) if m.is_watch_event() => self.queue_watch_event(&m),
                Ok(Some(m)) if self.settle_posted(&m) => {}
                Ok(Some(m)) => log::warn!("xenstore: unexpected reply (type {}, id {}) with no request in flight", m.header.type_, m.header.req_id),
                Ok(None) => break,
                Err(e) => log::warn!("xenstore: dropping malformed message: {e}"),
            }
        }
    }

    /// Sends one request; returns its id.
    fn send_request(&mut self, ty: XsType, tx_id: u32, parts: &[&[u8]]) -> Result<u32, XsError> {
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        let bytes = encode_request(ty, req_id, tx_id, parts)?;
        let deadline = super::time::xen_system_time() + XENSTORE_REQUEST_NS;
        self.send_bytes(&bytes, deadline)?;
        Ok(req_id)
    }

    /// Sends one request without waiting for its reply, which is read later (by the next
    /// request or `poll_watches`); if it is an error, `what` is logged with it.
    fn post(&mut self, ty: XsType, parts: &[&[u8]], what: &'static str) -> Result<(), XsError> {
        let req_id = self.send_request(ty, 0, parts)?;
        self.posted.push_back((req_id, what));
        Ok(())
    }

    /// `write`, posted (see `post`).
    pub fn post_write(&mut self, path: &str, value: &str, what: &'static str) -> Result<(), XsError> {
        self.post(XsType::Write, &[path.as_bytes(), b"\0", value.as_bytes()], what)
    }

    /// `watch`, posted (see `post`).
    pub fn post_watch(&mut self, path: &str, token: &str, what: &'static str) -> Result<(), XsError> {
        self.post(XsType::Watch, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"], what)
    }

    /// Sends one request and waits for its reply.
    pub fn request(&mut self, ty: XsType, tx_id: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        let req_id = self.send_request(ty, tx_id, parts)?;
        let deadline = super::time::xen_system_time() + XENSTORE_REQUEST_NS;
        loop {
            self.pull()?;
            while let Some(m) = self.incoming.next_message()? {
                if m.is_watch_event() {
                    self.queue_watch_event(&m);
                } else if self.settle_posted(&m) {
                    continue;
                } else if m.header.req_id == req_id {
                    return m.into_reply(ty);
                } else {
                    log::warn!("xenstore: dropping reply with id {} (waiting for {req_id})", m.header.req_id);
                }
            }
            if super::time::xen_system_time() > deadline {
                return Err(XsError::Timeout);
            }
            wait_on_port(self.port, RING_POLL_NS);
        }
    }

    pub fn read(&mut self, tx: u32, path: &str) -> Result<String, XsError> {
        let v = self.request(XsType::Read, tx, &[path.as_bytes(), b"\0"])?;
        Ok(String::from(reply_text(&v)?))
    }

    pub fn write(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
        self.request(XsType::Write, tx, &[path.as_bytes(), b"\0", value.as_bytes()]).map(|_| ())
    }

    /// The names under `path` (NUL-separated in the reply).
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        let v = self.request(XsType::Directory, 0, &[path.as_bytes(), b"\0"])?;
        Ok(v.split(|&b| b == 0).filter(|n| !n.is_empty()).map(|n| String::from_utf8_lossy(n).into_owned()).collect())
    }

    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XsType::Watch, 0, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]).map(|_| ())
    }

    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        self.request(XsType::Unwatch, 0, &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"]).map(|_| ())
    }

    pub fn transaction_start(&mut self) -> Result<u32, XsError> {
        let v = self.request(XsType::TransactionStart, 0, &[b"\0"])?;
        parse_tx_id(&v)
    }

    /// Ends a transaction; Err(Xenstore("EAGAIN")) means "conflict, retry".
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        self.request(XsType::TransactionEnd, tx, &[if commit { b"T\0" } else { b"F\0" }]).map(|_| ())
    }
}

impl XsTransactions for Xenstore {
    fn transaction_start(&mut self) -> Result<u32, XsError> {
        Xenstore::transaction_start(self)
    }
    fn read(&mut self, tx: u32, path: &str) -> Result<String, XsError> {
        Xenstore::read(self, tx, path)
    }
    fn write(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
        Xenstore::write(self, tx, path, value)
    }
    fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        Xenstore::transaction_end(self, tx, commit)
    }
}

/// The xenstore client as split-device drivers use it (`xenbus::Store`). Waiting for a
/// backend polls: xenstore's port wakes us early when anything arrives.
pub struct XsStore<'a>(pub &'a mut Xenstore);

/// How often a wait for a backend looks again.
const STORE_POLL_NS: u64 = 10_000_000;

impl Store for XsStore<'_> {
    fn read(&mut self, path: &str) -> Result<String, String> {
        self.0.read(0, path).map_err(|e| alloc::format!("{e}"))
    }
    fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
        self.0.write(0, path, value).map_err(|e| alloc::format!("{e}"))
    }
    fn write_all(&mut self, writes: &[(String, String)]) -> Result<(), String> {
        // A conflicting transaction (EAGAIN) is retried, a few times.
        let mut last = String::new();
        for _ in 0..8 {
            let tx = self.0.transaction_start().map_err(|e| alloc::format!("{e}"))?;
            let mut failed = None;
            for (k, v) in writes {
                if let Err(e) = self.0.write(tx, k, v) {
                    failed = Some(alloc::format!("{k}: {e}"));
                    break;
                }
            }
            if let Some(e) = failed {
                let _ = self.0.transaction_end(tx, false);
                return Err(e);
            }
            match self.0.transaction_end(tx, true) {
                Ok(()) => return Ok(()),
                Err(XsError::Xenstore(ref e)) if e == "EAGAIN" => last = "EAGAIN".into(),
                Err(e) => return Err(alloc::format!("{e}")),
            }
        }
        Err(alloc::format!("the transaction kept conflicting ({last})"))
    }
    fn directory(&mut self, path: &str) -> Result<Vec<String>, String> {
        self.0.directory(path).map_err(|e| alloc::format!("{e}"))
    }
    fn wait_change(&mut self, _path: &str, until_ns: u64) {
        let now = super::time::xen_system_time();
        wait_on_port(self.0.port, until_ns.saturating_sub(now).clamp(1, STORE_POLL_NS));
    }
    fn now_ns(&self) -> u64 {
        super::time::xen_system_time()
    }
}
