//! The `control/shutdown` protocol (docs/misc/xenstore-paths): the toolstack writes a request,
//! the guest reads it and acknowledges by writing "" in the same transaction (retrying on
//! EAGAIN), then acts on it. Pure: it runs over any `XsTransactions`, so it is host-tested.
use super::xenstore_wire::XsError;
use alloc::string::String;

pub const SHUTDOWN_NODE: &str = "control/shutdown";
/// The watch token the shim registers `control/shutdown` under.
pub const SHUTDOWN_WATCH_TOKEN: &str = "shutdown";
/// The nodes libxl and other toolstacks look for before they ask a guest to suspend.
pub const FEATURE_NODES: [&str; 3] = ["control/feature-suspend", "control/feature-poweroff", "control/feature-reboot"];
/// Where a guest publishes its suspend event channel (a port of its own, unbound, for dom0):
/// libxl then signals that port instead of writing `control/shutdown` and waiting for the
/// acknowledgement through xenstore (libxl_dom_suspend.c, `xs_suspend_evtchn_port`).
pub const SUSPEND_EVTCHN_NODE: &str = "device/suspend/event-channel";
/// What the toolstack wants the guest to hold, in KiB (`xl mem-set` changes it; the guest
/// may read and watch it, not write it).
pub const MEMORY_TARGET_NODE: &str = "memory/target";
/// The watch token the shim registers `memory/target` under.
pub const MEMORY_TARGET_WATCH_TOKEN: &str = "target";

/// A transaction that keeps conflicting is given up after this many tries.
pub const MAX_TRANSACTION_RETRIES: u32 = 32;
/// Unknown requests are logged; this much of one is kept for the log line.
pub const MAX_LOGGED_REQUEST: usize = 64;

/// What the toolstack asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Nothing (the node is empty or absent: our own acknowledgement fires the watch too).
    Nothing,
    Poweroff,
    Reboot,
    Suspend,
    /// Anything else, cut to MAX_LOGGED_REQUEST bytes for the log.
    Unknown(String),
}

impl Request {
    pub fn parse(value: &str) -> Request {
        match value {
            "" => Request::Nothing,
            "poweroff" | "halt" => Request::Poweroff,
            "reboot" => Request::Reboot,
            "suspend" => Request::Suspend,
            other => {
                let mut cut = other.len().min(MAX_LOGGED_REQUEST);
                while !other.is_char_boundary(cut) {
                    cut -= 1;
                }
                Request::Unknown(String::from(&other[..cut]))
            }
        }
    }
}

/// The xenstore operations the protocol needs (the shim's client; a fake in tests).
pub trait XsTransactions {
    fn transaction_start(&mut self) -> Result<u32, XsError>;
    fn read(&mut self, tx: u32, path: &str) -> Result<String, XsError>;
    fn write(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError>;
    /// Err(Xenstore("EAGAIN")) means "conflict, retry".
    fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError>;
}

fn is(e: &XsError, name: &str) -> bool {
    matches!(e, XsError::Xenstore(n) if n == name)
}

/// Reads and acknowledges the pending request in one transaction.
pub fn take_request(xs: &mut impl XsTransactions) -> Result<Request, XsError> {
    for _ in 0..MAX_TRANSACTION_RETRIES {
        let tx = xs.transaction_start()?;
        let value = match xs.read(tx, SHUTDOWN_NODE) {
            Ok(v) => v,
            Err(e) if is(&e, "ENOENT") => String::new(),
            Err(e) => {
                let _ = xs.transaction_end(tx, false);
                return Err(e);
            }
        };
        if value.is_empty() {
            xs.transaction_end(tx, false)?;
            return Ok(Request::Nothing);
        }
        if let Err(e) = xs.write(tx, SHUTDOWN_NODE, "") {
            let _ = xs.transaction_end(tx, false);
            return Err(e);
        }
        match xs.transaction_end(tx, true) {
            Ok(()) => return Ok(Request::parse(&value)),
            Err(e) if is(&e, "EAGAIN") => continue,
            Err(e) => return Err(e),
        }
    }
    Err(XsError::Xenstore(String::from("EAGAIN")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;

    #[derive(Default)]
    struct FakeStore {
        nodes: BTreeMap<String, String>,
        /// Commits that fail with EAGAIN before one succeeds.
        conflicts: u32,
        log: Vec<String>,
        fail_reads: Option<&'static str>,
    }

    impl XsTransactions for FakeStore {
        fn transaction_start(&mut self) -> Result<u32, XsError> {
            self.log.push("start".into());
            Ok(7)
        }
        fn read(&mut self, tx: u32, path: &str) -> Result<String, XsError> {
            assert_eq!(tx, 7, "read inside the transaction");
            if let Some(e) = self.fail_reads {
                return Err(XsError::Xenstore(e.into()));
            }
            self.nodes.get(path).cloned().ok_or(XsError::Xenstore("ENOENT".into()))
        }
        fn write(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
            assert_eq!(tx, 7);
            self.log.push(alloc::format!("write {path}={value:?}"));
            Ok(())
        }
        fn transaction_end(&mut self, _tx: u32, commit: bool) -> Result<(), XsError> {
            self.log.push(alloc::format!("end commit={commit}"));
            if commit && self.conflicts > 0 {
                self.conflicts -= 1;
                return Err(XsError::Xenstore("EAGAIN".into()));
            }
            if commit {
                self.nodes.insert(SHUTDOWN_NODE.into(), String::new());
            }
            Ok(())
        }
    }

    fn store(value: Option<&str>) -> FakeStore {
        let mut s = FakeStore::default();
        if let Some(v) = value {
            s.nodes.insert(SHUTDOWN_NODE.into(), v.into());
        }
        s
    }

    #[test]
    fn every_request_is_read_acknowledged_and_parsed() {
        for (value, want) in [("suspend", Request::Suspend), ("poweroff", Request::Poweroff), ("halt", Request::Poweroff), ("reboot", Request::Reboot)] {
            let mut s = store(Some(value));
            assert_eq!(take_request(&mut s), Ok(want.clone()));
            assert_eq!(s.log, ["start", "write control/shutdown=\"\"", "end commit=true"], "{value}");
            assert_eq!(s.nodes[SHUTDOWN_NODE], "", "acknowledged");
        }
        println!("checked: suspend, poweroff, halt, reboot each acknowledged in one transaction");
    }

    #[test]
    fn empty_absent_unknown_and_very_long_values() {
        let mut s = store(Some(""));
        assert_eq!(take_request(&mut s), Ok(Request::Nothing));
        assert_eq!(s.log, ["start", "end commit=false"], "nothing written for an empty node");
        let mut s = store(None);
        assert_eq!(take_request(&mut s), Ok(Request::Nothing), "absent node");
        let mut s = store(Some("bogus-request"));
        assert_eq!(take_request(&mut s), Ok(Request::Unknown("bogus-request".into())));
        assert_eq!(s.nodes[SHUTDOWN_NODE], "", "an unknown request is acknowledged too");
        let long = "é".repeat(3000);
        let mut s = store(Some(&long));
        match take_request(&mut s).unwrap() {
            Request::Unknown(v) => assert!(v.len() <= MAX_LOGGED_REQUEST && v.chars().all(|c| c == 'é'), "cut on a char boundary"),
            other => panic!("{other:?}"),
        }
        println!("checked: empty, absent, unknown and 6000-byte values");
    }

    #[test]
    fn conflicts_retry_and_errors_end_the_transaction() {
        let mut s = store(Some("suspend"));
        s.conflicts = 2;
        assert_eq!(take_request(&mut s), Ok(Request::Suspend));
        assert_eq!(s.log.iter().filter(|l| *l == "start").count(), 3, "retried after EAGAIN twice");
        let mut s = store(Some("suspend"));
        s.conflicts = 1000;
        assert_eq!(take_request(&mut s), Err(XsError::Xenstore("EAGAIN".into())), "gives up, bounded");
        let mut s = store(Some("suspend"));
        s.fail_reads = Some("EACCES");
        assert_eq!(take_request(&mut s), Err(XsError::Xenstore("EACCES".into())));
        assert_eq!(s.log.last().unwrap(), "end commit=false", "transaction closed on error");
        println!("checked: EAGAIN retried (bounded at {MAX_TRANSACTION_RETRIES}), other errors abort the transaction");
    }
}
