//! Index arithmetic for Xen's shared rings (console, xenstore): free-running u32 indices,
//! power-of-two data areas. Pure functions over a `RingBuf`, so a hostile or corrupt backend
//! (indices that claim more data than the ring holds) is an error, never an overrun.

/// A ring's data area.
pub trait RingBuf {
    /// Size in bytes; a power of two.
    fn size(&self) -> u32;
    fn read_byte(&self, offset: u32) -> u8;
    fn write_byte(&mut self, offset: u32, byte: u8);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// prod - cons exceeds the ring's size: the other end wrote nonsense indices.
    Corrupt { prod: u32, cons: u32, size: u32 },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::Corrupt { prod, cons, size } => {
                write!(f, "ring indices are corrupt (prod {prod:#x}, cons {cons:#x}, size {size})")
            }
        }
    }
}

/// Bytes in the ring between `cons` and `prod`.
pub fn used(prod: u32, cons: u32, size: u32) -> Result<u32, RingError> {
    let used = prod.wrapping_sub(cons);
    if used > size {
        return Err(RingError::Corrupt { prod, cons, size });
    }
    Ok(used)
}

/// Copies as much of `data` as fits; returns (bytes written, new prod).
pub fn produce(ring: &mut impl RingBuf, prod: u32, cons: u32, data: &[u8]) -> Result<(usize, u32), RingError> {
    let size = ring.size();
    let free = size - used(prod, cons, size)?;
    let n = data.len().min(free as usize);
    for (i, &b) in data[..n].iter().enumerate() {
        ring.write_byte(prod.wrapping_add(i as u32) & (size - 1), b);
    }
    Ok((n, prod.wrapping_add(n as u32)))
}

/// Copies as much as is available into `out`; returns (bytes read, new cons).
pub fn consume(ring: &impl RingBuf, prod: u32, cons: u32, out: &mut [u8]) -> Result<(usize, u32), RingError> {
    let size = ring.size();
    let avail = used(prod, cons, size)?;
    let n = out.len().min(avail as usize);
    for (i, o) in out[..n].iter_mut().enumerate() {
        *o = ring.read_byte(cons.wrapping_add(i as u32) & (size - 1));
    }
    Ok((n, cons.wrapping_add(n as u32)))
}

/// Takes console bytes a backend had not read by the suspend back out of the ring, just
/// before the hypercall; they are written into the ring again after it (the new domain's, or
/// the same one if the suspend was cancelled). Left in the ring, they would come out twice: the
/// old domain's backend reads them from the old page even once the domain is gone, and Xen
/// 4.17's PV restore keeps the console page as saved, so the new backend reads them again
/// (measured in the lab: xenconsoled stopped across an `xl save`, then restored). Taken only
/// from a backend that read nothing for a while (`suspend`'s short flush timed out), which
/// is then not in the middle of reading them.
///
/// Returns the bytes between `cons` and `prod` and the producer index that takes them back
/// (`cons`); nothing from a ring with nonsense indices.
pub fn take_back_unread(ring: &impl RingBuf, prod: u32, cons: u32) -> (alloc::vec::Vec<u8>, u32) {
    let mut bytes = alloc::vec![0u8; ring.size() as usize];
    match consume(ring, prod, cons, &mut bytes) {
        Ok((n, _)) => {
            bytes.truncate(n);
            (bytes, cons)
        }
        Err(_) => (alloc::vec::Vec::new(), prod),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    #[test]
    fn unread_console_bytes_are_taken_back_whole() {
        let mut ring = VecRing(alloc::vec![0; 16]);
        // 20 bytes written in all, the backend read 13: 7 unread, wrapping past the end.
        let (_, prod) = produce(&mut ring, 0, 0, b"0123456789ab").unwrap();
        let (_, prod) = produce(&mut ring, prod, 12, b"cdefghij").unwrap();
        let (taken, new_prod) = take_back_unread(&ring, prod, 13);
        assert_eq!((&taken[..], new_prod), (&b"defghij"[..], 13));
        // Nonsense indices (more than a ring's worth): nothing taken, nothing changed.
        assert_eq!(take_back_unread(&ring, 100, 0), (alloc::vec::Vec::new(), 100));
    }

    pub struct VecRing(pub alloc::vec::Vec<u8>);
    impl RingBuf for VecRing {
        fn size(&self) -> u32 {
            self.0.len() as u32
        }
        fn read_byte(&self, o: u32) -> u8 {
            self.0[o as usize]
        }
        fn write_byte(&mut self, o: u32, b: u8) {
            self.0[o as usize] = b;
        }
    }

    #[test]
    fn wraps_around_u32_and_the_ring() {
        let mut r = VecRing(vec![0; 16]);
        let start = u32::MAX - 5;
        let (n, prod) = produce(&mut r, start, start, b"0123456789abcdefXYZ").unwrap();
        assert_eq!((n, prod), (16, start.wrapping_add(16)));
        let (n2, _) = produce(&mut r, prod, start, b"more").unwrap();
        assert_eq!(n2, 0, "full ring accepts nothing");
        let mut out = [0u8; 10];
        let (n, cons) = consume(&r, prod, start, &mut out).unwrap();
        assert_eq!(&out[..n], b"0123456789");
        let (n, _) = consume(&r, prod, cons, &mut out).unwrap();
        assert_eq!(&out[..n], b"abcdef");
        println!("checked: produce/consume across the u32 wrap and the ring end; full ring");
    }

    #[test]
    fn hostile_indices_are_an_error() {
        let mut r = VecRing(vec![0; 16]);
        assert_eq!(used(100, 50, 16), Err(RingError::Corrupt { prod: 100, cons: 50, size: 16 }));
        assert!(produce(&mut r, 0, 17, b"x").is_err(), "cons ahead of prod by more than the size");
        let mut out = [0u8; 4];
        assert!(consume(&r, 1000, 0, &mut out).is_err());
        println!("checked: indices claiming more than the ring holds are refused");
    }
}
