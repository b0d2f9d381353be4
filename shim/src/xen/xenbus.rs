//! The frontend's half of a xenbus split device (io/xenbus.h states, libxl's xenstore layout):
//! find the devices, read where the backend is, wait for it to reach a state, publish ours.
//! Host-testable: xenstore and the clock are behind `Store`, which the kernel implements over
//! its xenstore client and a fake backend implements in tests. Whatever the backend or the
//! toolstack wrote is checked; a bad value fails the device with a `DeviceError` that names
//! the key and the value, never the shim.
use super::abi::xenbus::XenbusState;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What the frontend needs from xenstore. Paths are relative to the domain's home
/// (`device/vbd/51712`) or absolute (the backend's `/local/domain/0/backend/...`).
pub trait Store {
    /// A key's value; `Err` with xenstore's error text (e.g. "ENOENT") when it cannot.
    fn read(&mut self, path: &str) -> Result<String, String>;
    fn write(&mut self, path: &str, value: &str) -> Result<(), String>;
    /// Several keys in one transaction (retried while xenstore says EAGAIN).
    fn write_all(&mut self, writes: &[(String, String)]) -> Result<(), String>;
    fn directory(&mut self, path: &str) -> Result<Vec<String>, String>;
    /// Returns when `path` may have changed (a watch on it fired) or at `until_ns`.
    fn wait_change(&mut self, path: &str, until_ns: u64);
    /// Monotonic time.
    fn now_ns(&self) -> u64;
}

/// Why a device is unusable: one line for the log, and the device is marked failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// A key the protocol requires is absent or unreadable.
    MissingKey { key: String, why: String },
    /// A key holds a value that is not what the protocol allows.
    BadValue { key: String, value: String, why: &'static str },
    /// The backend did not reach the state in time.
    BackendTimeout { backend: String, want: XenbusState, state: Option<XenbusState>, waited_ms: u64 },
    /// The backend closed while we waited for it to connect.
    BackendClosed { backend: String, state: XenbusState },
    /// Writing our keys failed.
    Store { key: String, why: String },
    /// The backend broke the ring protocol (a response id we never sent, an index past the
    /// requests outstanding, ...).
    Protocol(String),
    /// No grant entry, event channel or page was free.
    Resources(String),
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeviceError::MissingKey { key, why } => write!(f, "{key} is missing ({why})"),
            DeviceError::BadValue { key, value, why } => write!(f, "{key} = {value:?}: {why}"),
            DeviceError::BackendTimeout { backend, want, state, waited_ms } => {
                write!(f, "backend {backend} did not reach {want:?} within {waited_ms} ms (its state: {state:?})")
            }
            DeviceError::BackendClosed { backend, state } => write!(f, "backend {backend} went to {state:?} while connecting"),
            DeviceError::Store { key, why } => write!(f, "writing {key} failed ({why})"),
            DeviceError::Protocol(s) => write!(f, "the backend broke the ring protocol: {s}"),
            DeviceError::Resources(s) => write!(f, "out of {s}"),
        }
    }
}

/// The devices of a kind (`device/vbd`), by id, in numeric order. None is an empty list.
/// Entries that are not numbers are skipped with their names returned.
pub fn enumerate(store: &mut impl Store, kind_dir: &str) -> (Vec<u32>, Vec<String>) {
    let names = store.directory(kind_dir).unwrap_or_default();
    let mut ids = Vec::new();
    let mut odd = Vec::new();
    for n in names {
        match n.parse::<u32>() {
            Ok(id) => ids.push(id),
            Err(_) => odd.push(n),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    (ids, odd)
}

pub fn read_key(store: &mut impl Store, key: &str) -> Result<String, DeviceError> {
    store.read(key).map(|v| String::from(v.trim_end_matches('\0'))).map_err(|why| DeviceError::MissingKey { key: key.into(), why })
}

/// A decimal key within `lo..=hi`.
pub fn read_number(store: &mut impl Store, key: &str, lo: u64, hi: u64) -> Result<u64, DeviceError> {
    let v = read_key(store, key)?;
    match v.trim().parse::<u64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(_) => Err(DeviceError::BadValue { key: key.into(), value: v, why: "out of range" }),
        Err(_) => Err(DeviceError::BadValue { key: key.into(), value: v, why: "not a decimal number" }),
    }
}

/// An optional flag key: absent means 0.
pub fn read_flag(store: &mut impl Store, key: &str) -> Result<bool, DeviceError> {
    match store.read(key) {
        Err(_) => Ok(false),
        Ok(v) => match v.trim_end_matches('\0').trim() {
            "0" | "" => Ok(false),
            "1" => Ok(true),
            _ => Err(DeviceError::BadValue { key: key.into(), value: v, why: "not 0 or 1" }),
        },
    }
}

/// Where the backend of `dev` (`device/vbd/51712`) is: its xenstore directory and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub path: String,
    pub domid: u16,
}

/// Domain ids a backend may have (below DOMID_FIRST_RESERVED).
const DOMID_MAX: u64 = 0x7fef;

pub fn read_backend(store: &mut impl Store, dev: &str) -> Result<Backend, DeviceError> {
    let path = read_key(store, &format!("{dev}/backend"))?;
    if !path.starts_with('/') || path.len() > 256 {
        return Err(DeviceError::BadValue { key: format!("{dev}/backend"), value: path, why: "not an absolute xenstore path" });
    }
    let domid = read_number(store, &format!("{dev}/backend-id"), 0, DOMID_MAX)? as u16;
    Ok(Backend { path, domid })
}

pub fn backend_state(store: &mut impl Store, backend: &Backend) -> Result<XenbusState, DeviceError> {
    let key = format!("{}/state", backend.path);
    let v = read_key(store, &key)?;
    XenbusState::parse(&v).ok_or(DeviceError::BadValue { key, value: v, why: "not a xenbus state" })
}

/// What waiting for a backend state makes of the state it has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Reached,
    Wait,
    Closed,
}

/// `want` is InitWait (ready for our ring) or Connected (serving it). A backend that goes
/// Closing or Closed meanwhile will not get there.
pub fn judge(want: XenbusState, state: XenbusState) -> Verdict {
    use XenbusState::*;
    match (want, state) {
        (_, Closing | Closed) => Verdict::Closed,
        (InitWait, InitWait | Initialised | Connected) => Verdict::Reached,
        (Connected, Connected) => Verdict::Reached,
        _ => Verdict::Wait,
    }
}

/// Looks once, without waiting, whether the backend has reached `want` (see `judge`):
/// `Ok(true)` if so, `Ok(false)` to look again later, an error once it closed or once
/// `timeout_ns` have passed since `since_ns`. A connection made in the background (a new
/// domain's, while the payload runs) is moved on by this (`Link::next`).
pub fn check_backend(store: &mut impl Store, backend: &Backend, want: XenbusState, since_ns: u64, timeout_ns: u64) -> Result<bool, DeviceError> {
    // A state key not there yet (the backend still probing) is waited for like any other.
    let state = match backend_state(store, backend) {
        Ok(s) => Some(s),
        Err(DeviceError::MissingKey { .. }) => None,
        Err(e) => return Err(e),
    };
    match state.map(|s| judge(want, s)) {
        Some(Verdict::Reached) => return Ok(true),
        Some(Verdict::Closed) => return Err(DeviceError::BackendClosed { backend: backend.path.clone(), state: state.unwrap_or(XenbusState::Closed) }),
        _ => {}
    }
    let waited = store.now_ns().saturating_sub(since_ns);
    if waited >= timeout_ns {
        return Err(DeviceError::BackendTimeout { backend: backend.path.clone(), want, state, waited_ms: waited / 1_000_000 });
    }
    Ok(false)
}

/// Where a frontend's connection with its backend stands. At boot a frontend connects
/// before the payload runs; in a new domain it connects again in the background, while the
/// payload runs, moved on whenever the shim has time for it (its calls wait meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Connected: the ring is in use.
    Up,
    /// Not connected, and where the backend is not read yet (at boot, and in a new domain:
    /// the resume itself touches no xenstore for the devices).
    Lost,
    /// Waiting since `since_ns` for the backend to reach `want`: InitWait (then our ring and
    /// keys go out) or Connected (then the ring is in use).
    Connecting { want: XenbusState, since_ns: u64 },
}

/// What a connection in progress does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The backend is not there yet: look again when it changes.
    Wait,
    /// The backend is at InitWait: publish the ring, port and keys.
    Publish,
    /// The backend is Connected: read what it describes, say Connected.
    Finish,
    /// Connected already.
    Up,
}

impl Link {
    pub fn is_up(&self) -> bool {
        *self == Link::Up
    }

    /// When the connection in progress began (the backend found).
    pub fn since_ns(&self) -> Option<u64> {
        match *self {
            Link::Connecting { since_ns, .. } => Some(since_ns),
            _ => None,
        }
    }

    /// Looks once at the backend of `dev` (see `check_backend`; the timeout counts from when
    /// the backend was found). Lost: first reads where the backend is, into `backend`.
    pub fn next(&mut self, store: &mut impl Store, dev: &str, backend: &mut Backend, timeout_ns: u64) -> Result<Next, DeviceError> {
        let (want, since_ns) = match *self {
            Link::Up => return Ok(Next::Up),
            Link::Lost => {
                *backend = read_backend(store, dev)?;
                (XenbusState::InitWait, store.now_ns())
            }
            Link::Connecting { want, since_ns } => (want, since_ns),
        };
        *self = Link::Connecting { want, since_ns };
        if !check_backend(store, backend, want, since_ns, timeout_ns)? {
            return Ok(Next::Wait);
        }
        Ok(if want == XenbusState::InitWait { Next::Publish } else { Next::Finish })
    }

    /// Our keys are out: wait for the backend's Connected.
    pub fn published(&mut self) {
        if let Link::Connecting { want, .. } = self {
            *want = XenbusState::Connected;
        }
    }

    /// Sleeps until the backend's state may have changed, or the connection's deadline.
    pub fn wait(&self, store: &mut impl Store, backend: &Backend, timeout_ns: u64) {
        if let Link::Connecting { since_ns, .. } = *self {
            store.wait_change(&format!("{}/state", backend.path), since_ns + timeout_ns);
        }
    }
}

pub fn switch_state(store: &mut impl Store, dev: &str, state: XenbusState) -> Result<(), DeviceError> {
    let key = format!("{dev}/state");
    store.write(&key, &format!("{}", state as u32)).map_err(|why| DeviceError::Store { key, why })
}

/// Closing the device (at poweroff): Closing, wait for the backend to follow, then Closed.
/// Best effort: the domain is going away either way.
pub fn close(store: &mut impl Store, dev: &str, backend: &Backend, timeout_ns: u64) -> Result<(), DeviceError> {
    switch_state(store, dev, XenbusState::Closing)?;
    let t0 = store.now_ns();
    let key = format!("{}/state", backend.path);
    while !matches!(backend_state(store, backend), Ok(XenbusState::Closing | XenbusState::Closed) | Err(_)) {
        if store.now_ns().saturating_sub(t0) >= timeout_ns {
            break;
        }
        store.wait_change(&key, t0 + timeout_ns);
    }
    switch_state(store, dev, XenbusState::Closed)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::string::ToString;

    /// xenstore as a map, a clock that each wait advances, and a backend the test scripts:
    /// `on_wait` runs at every wait and may change keys.
    pub struct FakeStore {
        pub keys: BTreeMap<String, String>,
        pub now: u64,
        pub writes: Vec<(String, String)>,
        pub on_wait: fn(&mut BTreeMap<String, String>, u64),
        pub fail_writes: bool,
    }

    impl FakeStore {
        pub fn new(keys: &[(&str, &str)]) -> FakeStore {
            FakeStore { keys: keys.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), now: 0, writes: Vec::new(), on_wait: |_, _| {}, fail_writes: false }
        }
    }

    impl Store for FakeStore {
        fn read(&mut self, path: &str) -> Result<String, String> {
            self.keys.get(path).cloned().ok_or("ENOENT".into())
        }
        fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
            if self.fail_writes {
                return Err("EACCES".into());
            }
            self.writes.push((path.into(), value.into()));
            self.keys.insert(path.into(), value.into());
            Ok(())
        }
        fn write_all(&mut self, writes: &[(String, String)]) -> Result<(), String> {
            for (k, v) in writes {
                self.write(k, v)?;
            }
            Ok(())
        }
        fn directory(&mut self, path: &str) -> Result<Vec<String>, String> {
            let prefix = format!("{path}/");
            let mut out: Vec<String> = self.keys.keys().filter_map(|k| k.strip_prefix(&prefix)).map(|r| r.split('/').next().unwrap_or("").to_string()).collect();
            out.dedup();
            if out.is_empty() { Err("ENOENT".into()) } else { Ok(out) }
        }
        fn wait_change(&mut self, _path: &str, until_ns: u64) {
            self.now = (self.now + 10_000_000).min(until_ns.max(self.now + 1));
            (self.on_wait)(&mut self.keys, self.now);
        }
        fn now_ns(&self) -> u64 {
            self.now
        }
    }

    const BE: &str = "/local/domain/0/backend/vbd/5/51712";

    fn dev_keys() -> FakeStore {
        FakeStore::new(&[("device/vbd/51712/backend", BE), ("device/vbd/51712/backend-id", "0"), ("device/vbd/51712/state", "1"), ("device/vbd/51728/backend", BE), ("device/vbd/x/junk", "1")])
    }

    #[test]
    fn devices_are_enumerated_in_numeric_order_and_odd_names_reported() {
        let mut s = dev_keys();
        assert_eq!(enumerate(&mut s, "device/vbd"), (alloc::vec![51712, 51728], alloc::vec!["x".to_string()]));
        assert_eq!(enumerate(&mut s, "device/vif"), (alloc::vec![], alloc::vec![]));
    }

    #[test]
    fn the_backend_location_is_checked() {
        let mut s = dev_keys();
        assert_eq!(read_backend(&mut s, "device/vbd/51712"), Ok(Backend { path: BE.into(), domid: 0 }));
        let e = read_backend(&mut s, "device/vbd/51728").unwrap_err();
        assert_eq!(e.to_string(), "device/vbd/51728/backend-id is missing (ENOENT)");
        s.keys.insert("device/vbd/51712/backend-id".into(), "70000".into());
        assert_eq!(read_backend(&mut s, "device/vbd/51712").unwrap_err().to_string(), "device/vbd/51712/backend-id = \"70000\": out of range");
        s.keys.insert("device/vbd/51712/backend".into(), "relative/path".into());
        assert!(matches!(read_backend(&mut s, "device/vbd/51712"), Err(DeviceError::BadValue { .. })));
    }

    /// Waits until the backend reaches `want`, as a frontend's `wait_connected` does.
    fn wait_backend(store: &mut FakeStore, backend: &Backend, want: XenbusState, timeout_ns: u64) -> Result<(), DeviceError> {
        let t0 = store.now_ns();
        while !check_backend(store, backend, want, t0, timeout_ns)? {
            store.wait_change("state", t0 + timeout_ns);
        }
        Ok(())
    }

    #[test]
    fn waiting_for_the_backend_follows_its_states_and_gives_up_in_time() {
        let b = Backend { path: BE.into(), domid: 0 };
        // Appears late, then reaches InitWait after 50 ms.
        let mut s = dev_keys();
        s.on_wait = |k, now| {
            let st = if now < 30_000_000 { "1" } else { "2" };
            k.insert(format!("{BE}/state"), st.into());
        };
        assert_eq!(wait_backend(&mut s, &b, XenbusState::InitWait, 1_000_000_000), Ok(()));
        assert!(s.now >= 30_000_000);
        // Never leaves InitWait: a timeout naming the state.
        let mut s = dev_keys();
        s.keys.insert(format!("{BE}/state"), "2".into());
        let e = wait_backend(&mut s, &b, XenbusState::Connected, 200_000_000).unwrap_err();
        assert!(matches!(e, DeviceError::BackendTimeout { state: Some(XenbusState::InitWait), .. }), "{e:?}");
        assert!(s.now >= 200_000_000 && s.now < 220_000_000);
        // Closes instead.
        s.keys.insert(format!("{BE}/state"), "6".into());
        assert!(matches!(wait_backend(&mut s, &b, XenbusState::Connected, 200_000_000), Err(DeviceError::BackendClosed { .. })));
        // Garbage.
        s.keys.insert(format!("{BE}/state"), "banana".into());
        assert_eq!(wait_backend(&mut s, &b, XenbusState::Connected, 1).unwrap_err().to_string(), format!("{BE}/state = \"banana\": not a xenbus state"));
    }

    #[test]
    fn flags_and_numbers_are_strict() {
        let mut s = FakeStore::new(&[("a", "1"), ("b", "0"), ("c", "yes"), ("n", "12x")]);
        assert_eq!((read_flag(&mut s, "a"), read_flag(&mut s, "b"), read_flag(&mut s, "absent")), (Ok(true), Ok(false), Ok(false)));
        assert!(read_flag(&mut s, "c").is_err());
        assert!(read_number(&mut s, "n", 0, 100).is_err());
    }
}
