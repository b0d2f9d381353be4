//! The xenstore wire protocol (xs_wire.h) as pure logic: encoding requests, reassembling
//! replies and watch events from the response ring's byte stream, and checking them. A
//! malformed reply (oversized, unknown type, missing NULs) is an error, never a panic.
use super::abi::xs_wire::{XsType, XsdSockmsg, XENSTORE_PAYLOAD_MAX};
use alloc::string::String;
use alloc::vec::Vec;
use zerocopy::{FromBytes, IntoBytes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsError {
    /// xenstored answered XS_ERROR with this errno name (ENOENT, EAGAIN, EACCES, ...).
    Xenstore(String),
    /// A reply header claims more than XENSTORE_PAYLOAD_MAX bytes.
    Oversized(u32),
    /// A reply of a type we do not know or did not ask for.
    UnexpectedType { expected: u32, got: u32 },
    /// A watch event without its two NUL-terminated strings, or bad UTF-8.
    BadPayload(&'static str),
    /// A request too large to send.
    RequestTooLarge(usize),
    Ring(super::ring::RingError),
    /// xenstored did not answer in time.
    Timeout,
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Xenstore(e) => write!(f, "xenstore error {e}"),
            XsError::Oversized(n) => write!(f, "xenstore reply of {n} bytes exceeds XENSTORE_PAYLOAD_MAX"),
            XsError::UnexpectedType { expected, got } => write!(f, "xenstore reply of type {got}, expected {expected}"),
            XsError::BadPayload(w) => write!(f, "malformed xenstore message: {w}"),
            XsError::RequestTooLarge(n) => write!(f, "xenstore request of {n} bytes is too large"),
            XsError::Ring(e) => write!(f, "xenstore ring: {e}"),
            XsError::Timeout => write!(f, "xenstore did not answer in time"),
        }
    }
}

impl From<super::ring::RingError> for XsError {
    fn from(e: super::ring::RingError) -> Self {
        XsError::Ring(e)
    }
}

/// A request's bytes: header then the NUL-separated parts.
pub fn encode_request(ty: XsType, req_id: u32, tx_id: u32, parts: &[&[u8]]) -> Result<Vec<u8>, XsError> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(XsError::RequestTooLarge(len));
    }
    let hdr = XsdSockmsg { type_: ty as u32, req_id, tx_id, len: len as u32 };
    let mut out = Vec::with_capacity(16 + len);
    out.extend_from_slice(hdr.as_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
    Ok(out)
}

/// One complete message from xenstored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: XsdSockmsg,
    pub payload: Vec<u8>,
}

impl Message {
    /// The reply to a request of type `expected`: its payload, or the xenstore error.
    pub fn into_reply(self, expected: XsType) -> Result<Vec<u8>, XsError> {
        if let Some(e) = self.error_text() {
            return Err(XsError::Xenstore(e));
        }
        if self.header.type_ != expected as u32 {
            return Err(XsError::UnexpectedType { expected: expected as u32, got: self.header.type_ });
        }
        Ok(self.payload)
    }

    /// xenstored's error (e.g. "EACCES") if this is an error reply.
    pub fn error_text(&self) -> Option<String> {
        if self.header.type_ != XsType::Error as u32 {
            return None;
        }
        let end = self.payload.iter().position(|&b| b == 0).unwrap_or(self.payload.len());
        Some(String::from_utf8_lossy(&self.payload[..end]).into_owned())
    }

    pub fn is_watch_event(&self) -> bool {
        self.header.type_ == XsType::WatchEvent as u32
    }

    /// A watch event's (path, token).
    pub fn watch_event(&self) -> Result<(String, String), XsError> {
        let mut it = self.payload.split(|&b| b == 0);
        let path = it.next().ok_or(XsError::BadPayload("watch event without path"))?;
        let token = it.next().ok_or(XsError::BadPayload("watch event without token"))?;
        if !self.payload.ends_with(&[0]) {
            return Err(XsError::BadPayload("watch event not NUL-terminated"));
        }
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| XsError::BadPayload("watch event is not UTF-8"));
        Ok((s(path)?, s(token)?))
    }
}

/// Reassembles messages from the response stream (a message may be larger than the ring).
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: Vec<u8>,
}

impl Reassembler {
    pub fn push(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
    }

    pub fn clear(&mut self) {
        self.partial.clear();
    }

    /// The next complete message, if all of it has arrived.
    pub fn next_message(&mut self) -> Result<Option<Message>, XsError> {
        if self.partial.len() < 16 {
            return Ok(None);
        }
        let header = XsdSockmsg::read_from_bytes(&self.partial[..16]).expect("16 bytes");
        if header.len as usize > XENSTORE_PAYLOAD_MAX {
            self.partial.clear();
            return Err(XsError::Oversized(header.len));
        }
        if XsType::from_u32(header.type_).is_none() {
            self.partial.clear();
            return Err(XsError::UnexpectedType { expected: 0, got: header.type_ });
        }
        let total = 16 + header.len as usize;
        if self.partial.len() < total {
            return Ok(None);
        }
        let payload = self.partial[16..total].to_vec();
        self.partial.drain(..total);
        Ok(Some(Message { header, payload }))
    }
}

/// The value of a read reply as text (xenstore values are not NUL-terminated).
pub fn reply_text(payload: &[u8]) -> Result<&str, XsError> {
    core::str::from_utf8(payload).map_err(|_| XsError::BadPayload("value is not UTF-8"))
}

/// A transaction id from an XS_TRANSACTION_START reply ("123\0").
pub fn parse_tx_id(payload: &[u8]) -> Result<u32, XsError> {
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    core::str::from_utf8(&payload[..end])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(XsError::BadPayload("transaction id is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u32, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let hdr = XsdSockmsg { type_: ty, req_id, tx_id: 0, len: payload.len() as u32 };
        let mut v = hdr.as_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn encodes_a_write() {
        let b = encode_request(XsType::Write, 7, 3, &[b"control/shutdown\0", b""]).unwrap();
        assert_eq!(&b[..4], &11u32.to_le_bytes());
        assert_eq!(&b[4..8], &7u32.to_le_bytes());
        assert_eq!(&b[8..12], &3u32.to_le_bytes());
        assert_eq!(&b[12..16], &17u32.to_le_bytes());
        assert_eq!(&b[16..], b"control/shutdown\0");
        assert!(encode_request(XsType::Write, 1, 0, &[&[0u8; 5000]]).is_err());
    }

    #[test]
    fn reassembles_split_messages_and_watch_events() {
        let mut r = Reassembler::default();
        let mut stream = msg(15, 0, b"control/shutdown\0tok\0");
        stream.extend(msg(2, 5, b"suspend"));
        for chunk in stream.chunks(7) {
            r.push(chunk);
        }
        let ev = r.next_message().unwrap().unwrap();
        assert!(ev.is_watch_event());
        assert_eq!(ev.watch_event().unwrap(), ("control/shutdown".into(), "tok".into()));
        let rd = r.next_message().unwrap().unwrap();
        assert_eq!(rd.header.req_id, 5);
        assert_eq!(rd.into_reply(XsType::Read).unwrap(), b"suspend");
        assert_eq!(r.next_message().unwrap(), None);
        println!("checked: a watch event and a read reply, split in 7-byte chunks");
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut r = Reassembler::default();
        r.push(&msg(2, 1, b"")[..16]);
        let mut big = r.partial.clone();
        big[12..16].copy_from_slice(&5000u32.to_le_bytes());
        r.partial = big;
        assert_eq!(r.next_message(), Err(XsError::Oversized(5000)));
        r.push(&msg(99, 1, b"x"));
        assert!(matches!(r.next_message(), Err(XsError::UnexpectedType { got: 99, .. })));
        r.push(&msg(16, 1, b"EAGAIN\0"));
        let m = r.next_message().unwrap().unwrap();
        assert_eq!(m.error_text().as_deref(), Some("EAGAIN"));
        assert_eq!(m.into_reply(XsType::Read), Err(XsError::Xenstore("EAGAIN".into())));
        r.push(&msg(11, 1, b"OK\0"));
        let m = r.next_message().unwrap().unwrap();
        assert_eq!(m.error_text(), None);
        assert!(matches!(m.into_reply(XsType::Read), Err(XsError::UnexpectedType { .. })));
        r.push(&msg(15, 0, b"no-nul"));
        assert!(r.next_message().unwrap().unwrap().watch_event().is_err());
        assert_eq!(parse_tx_id(b"42\0"), Ok(42));
        assert!(parse_tx_id(b"x\0").is_err());
        println!("checked: oversized, unknown type, XS_ERROR, wrong reply type, bad watch event, bad tx id");
    }
}
