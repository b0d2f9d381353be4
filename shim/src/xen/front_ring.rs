//! The front end's side of an io/ring.h request/response ring (blkif, netif): the private
//! producer and consumer indices, when to notify, and the checks on what the backend wrote.
//! Pure index logic: the shared page itself is behind `SharedRing`, so a fake backend can
//! drive it in host tests. Indices are free-running u32; a slot is `index & (size - 1)`.

/// The shared page of a ring: its four indices and its entries.
pub trait SharedRing {
    type Request;
    type Response;
    /// `SHARED_RING_INIT`: all indices 0, the event thresholds 1.
    fn init(&mut self);
    fn req_prod(&self) -> u32;
    fn set_req_prod(&mut self, v: u32);
    fn req_event(&self) -> u32;
    fn rsp_prod(&self) -> u32;
    fn set_rsp_event(&mut self, v: u32);
    fn write_request(&mut self, slot: u32, req: &Self::Request);
    /// A copy of the entry, read once (the backend may change it meanwhile).
    fn read_response(&self, slot: u32) -> Self::Response;
    /// Orders the stores before it against the loads and stores after it (`mb`): entries
    /// before the index that publishes them, an event threshold before the re-check.
    fn full_barrier(&self);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontRingError {
    /// The backend claims more responses than there are requests outstanding.
    TooManyResponses { rsp_prod: u32, rsp_cons: u32, outstanding: u32 },
}

impl core::fmt::Display for FrontRingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrontRingError::TooManyResponses { rsp_prod, rsp_cons, outstanding } => write!(
                f,
                "the backend's rsp_prod {rsp_prod:#x} claims {} responses past rsp_cons {rsp_cons:#x}, but only {outstanding} requests are outstanding",
                rsp_prod.wrapping_sub(*rsp_cons)
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontRing {
    size: u32,
    /// Requests written, published or not.
    req_prod_pvt: u32,
    /// Responses consumed.
    rsp_cons: u32,
}

impl FrontRing {
    /// `size`: the ring's slots, a power of two.
    pub const fn new(size: u32) -> FrontRing {
        assert!(size.is_power_of_two());
        FrontRing { size, req_prod_pvt: 0, rsp_cons: 0 }
    }

    /// A fresh ring (the page after `SharedRing::init`).
    pub fn reset(&mut self) {
        self.req_prod_pvt = 0;
        self.rsp_cons = 0;
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// The index the next request goes to (its slot: `& (size - 1)`).
    pub fn producer_index(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The index of the next response to consume.
    pub fn consumer_index(&self) -> u32 {
        self.rsp_cons
    }

    /// Requests written whose responses have not been consumed.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    pub fn free_slots(&self) -> u32 {
        self.size - self.outstanding()
    }

    /// Writes a request into the next free slot (not yet visible to the backend: `push`).
    /// False when the ring is full.
    pub fn put_request<R: SharedRing + ?Sized>(&mut self, ring: &mut R, req: &R::Request) -> bool {
        if self.free_slots() == 0 {
            return false;
        }
        ring.write_request(self.req_prod_pvt & (self.size - 1), req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the requests written; true when the
    /// backend asked to be notified of them (it may be polling the ring instead).
    pub fn push<R: SharedRing + ?Sized>(&mut self, ring: &mut R) -> bool {
        let old = ring.req_prod();
        let new = self.req_prod_pvt;
        ring.full_barrier();
        ring.set_req_prod(new);
        ring.full_barrier();
        needs_notify(old, new, ring.req_event())
    }

    /// The responses ready to consume, after checking the backend's index: more responses
    /// than requests outstanding (a confused or hostile backend) is an error, and nothing is
    /// read.
    pub fn responses_ready<R: SharedRing + ?Sized>(&self, ring: &R) -> Result<u32, FrontRingError> {
        let rsp_prod = ring.rsp_prod();
        ring.full_barrier();
        let ready = rsp_prod.wrapping_sub(self.rsp_cons);
        if ready > self.outstanding() {
            return Err(FrontRingError::TooManyResponses { rsp_prod, rsp_cons: self.rsp_cons, outstanding: self.outstanding() });
        }
        Ok(ready)
    }

    /// Reads the next response (call only when `responses_ready` said there is one).
    pub fn take_response<R: SharedRing + ?Sized>(&mut self, ring: &R) -> R::Response {
        let rsp = ring.read_response(self.rsp_cons & (self.size - 1));
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        rsp
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: asks for an event at the next response, then looks
    /// again, closing the race with a response that came just before the request for an event.
    /// True when responses are waiting after all.
    pub fn final_check<R: SharedRing + ?Sized>(&self, ring: &mut R) -> Result<bool, FrontRingError> {
        if self.responses_ready(ring)? > 0 {
            return Ok(true);
        }
        ring.set_rsp_event(self.rsp_cons.wrapping_add(1));
        ring.full_barrier();
        Ok(self.responses_ready(ring)? > 0)
    }

}

/// Whether publishing `old..new` crosses the backend's event threshold `event` (u32
/// arithmetic, as io/ring.h).
pub fn needs_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A ring in plain memory whose backend the test plays.
    pub struct MemRing<Q: Copy + Default, S: Copy + Default> {
        pub req_prod: u32,
        pub req_event: u32,
        pub rsp_prod: u32,
        pub rsp_event: u32,
        pub reqs: Vec<Q>,
        pub rsps: Vec<S>,
    }

    impl<Q: Copy + Default, S: Copy + Default> MemRing<Q, S> {
        pub fn new(size: usize) -> Self {
            MemRing { req_prod: 0, req_event: 1, rsp_prod: 0, rsp_event: 1, reqs: alloc::vec![Q::default(); size], rsps: alloc::vec![S::default(); size] }
        }
    }

    impl<Q: Copy + Default, S: Copy + Default> SharedRing for MemRing<Q, S> {
        type Request = Q;
        type Response = S;
        fn init(&mut self) {
            (self.req_prod, self.rsp_prod, self.req_event, self.rsp_event) = (0, 0, 1, 1);
        }
        fn req_prod(&self) -> u32 {
            self.req_prod
        }
        fn set_req_prod(&mut self, v: u32) {
            self.req_prod = v;
        }
        fn req_event(&self) -> u32 {
            self.req_event
        }
        fn rsp_prod(&self) -> u32 {
            self.rsp_prod
        }
        fn set_rsp_event(&mut self, v: u32) {
            self.rsp_event = v;
        }
        fn write_request(&mut self, slot: u32, req: &Q) {
            self.reqs[slot as usize] = *req;
        }
        fn read_response(&self, slot: u32) -> S {
            self.rsps[slot as usize]
        }
        fn full_barrier(&self) {}
    }

    #[test]
    fn requests_fill_the_ring_and_no_more() {
        let mut ring = MemRing::<u32, u32>::new(4);
        let mut f = FrontRing::new(4);
        for i in 0..4 {
            assert!(f.put_request(&mut ring, &(10 + i)));
        }
        assert!(!f.put_request(&mut ring, &99), "a full ring takes nothing");
        assert!(f.push(&mut ring), "req_event 1: the backend wants the first request");
        assert_eq!((ring.req_prod, &ring.reqs[..]), (4, &[10, 11, 12, 13][..]));
        // The backend answers two; two slots are free again.
        ring.rsps[0] = 100;
        ring.rsps[1] = 101;
        ring.rsp_prod = 2;
        assert_eq!(f.responses_ready(&ring), Ok(2));
        assert_eq!((f.take_response(&ring), f.take_response(&ring)), (100, 101));
        assert_eq!(f.free_slots(), 2);
        assert!(f.put_request(&mut ring, &14));
        assert_eq!(ring.reqs[0], 14, "slot = index mod size");
    }

    #[test]
    fn notify_only_when_the_backend_asked() {
        // The backend wants an event when req_prod passes 5.
        assert!(!needs_notify(2, 4, 5));
        assert!(needs_notify(4, 5, 5));
        assert!(needs_notify(2, 8, 5));
        // Across the u32 wrap.
        assert!(needs_notify(u32::MAX - 1, 1, u32::MAX));
        assert!(!needs_notify(u32::MAX - 3, u32::MAX - 2, u32::MAX));
    }

    #[test]
    fn more_responses_than_requests_is_refused_without_reading() {
        let mut ring = MemRing::<u32, u32>::new(8);
        let mut f = FrontRing::new(8);
        f.put_request(&mut ring, &1);
        f.push(&mut ring);
        ring.rsp_prod = 3;
        let e = f.responses_ready(&ring).unwrap_err();
        assert_eq!(e, FrontRingError::TooManyResponses { rsp_prod: 3, rsp_cons: 0, outstanding: 1 });
        assert!(alloc::format!("{e}").contains("claims 3 responses"), "{e}");
        // An index far behind (a u32 wrap backwards) is as bad.
        ring.rsp_prod = u32::MAX;
        assert!(f.responses_ready(&ring).is_err());
    }

    #[test]
    fn final_check_sets_the_event_threshold_and_sees_late_responses() {
        let mut ring = MemRing::<u32, u32>::new(8);
        let mut f = FrontRing::new(8);
        f.put_request(&mut ring, &1);
        f.push(&mut ring);
        assert_eq!(f.final_check(&mut ring), Ok(false));
        assert_eq!(ring.rsp_event, 1);
        ring.rsp_prod = 1;
        assert_eq!(f.final_check(&mut ring), Ok(true));
    }

    #[test]
    fn indices_keep_working_across_the_u32_wrap() {
        let mut ring = MemRing::<u32, u32>::new(4);
        let mut f = FrontRing { size: 4, req_prod_pvt: u32::MAX - 1, rsp_cons: u32::MAX - 1 };
        ring.req_prod = u32::MAX - 1;
        ring.rsp_prod = u32::MAX - 1;
        for i in 0..3 {
            assert!(f.put_request(&mut ring, &i));
        }
        f.push(&mut ring);
        assert_eq!(ring.req_prod, 1);
        ring.rsp_prod = 1;
        assert_eq!(f.responses_ready(&ring), Ok(3));
        for _ in 0..3 {
            f.take_response(&ring);
        }
        assert_eq!((f.outstanding(), f.free_slots()), (0, 4));
    }
}
