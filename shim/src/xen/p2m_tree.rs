//! The p2m frame-list tree a PV guest publishes in shared_info so that the toolstack can find
//! its p2m when it saves it (xg_sr_save_x86_pv.c, map_p2m_tree): a top page (the frame list
//! list) holding the mfns of middle pages, each holding the mfns of 512 p2m pages. Rebuilt at
//! boot and in every new domain: every mfn changes across a save, and restore zeroes it.
use super::frames::Mfn;
use crate::layout::PTES_PER_TABLE;

/// u64 entries in one page: p2m entries per p2m page, and mfns per frame-list page.
pub const ENTRIES_PER_PAGE: u64 = PTES_PER_TABLE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P2mTreeError {
    /// The p2m needs more middle pages than the shim reserved.
    TooLarge { entries: u64, mids_needed: u64, mids_reserved: usize },
    Empty,
}

impl core::fmt::Display for P2mTreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            P2mTreeError::TooLarge { entries, mids_needed, mids_reserved } => {
                write!(f, "a p2m of {entries} entries needs {mids_needed} frame-list pages, the shim reserves {mids_reserved}")
            }
            P2mTreeError::Empty => write!(f, "the p2m has no entries"),
        }
    }
}

/// Number of p2m pages and of middle pages a p2m of `entries` entries needs.
pub fn shape(entries: u64) -> (u64, u64) {
    let pages = entries.div_ceil(ENTRIES_PER_PAGE);
    (pages, pages.div_ceil(ENTRIES_PER_PAGE))
}

/// Fills the tree: `mids[m][s]` = mfn of p2m page m*512+s, `top[m]` = mfn of `mids[m]`.
/// `p2m_page_mfn(i)` gives the mfn of p2m page i, `mid_mfn(m)` that of middle page m.
/// Returns how many middle pages are in use; unused entries are left zero.
pub fn build(entries: u64, p2m_page_mfn: impl Fn(u64) -> Mfn, mid_mfn: impl Fn(usize) -> Mfn, top: &mut [u64; 512], mids: &mut [[u64; 512]]) -> Result<usize, P2mTreeError> {
    if entries == 0 {
        return Err(P2mTreeError::Empty);
    }
    let (pages, mids_needed) = shape(entries);
    if mids_needed > mids.len() as u64 {
        return Err(P2mTreeError::TooLarge { entries, mids_needed, mids_reserved: mids.len() });
    }
    top.fill(0);
    for page in 0..pages {
        mids[(page / ENTRIES_PER_PAGE) as usize][(page % ENTRIES_PER_PAGE) as usize] = p2m_page_mfn(page).raw();
    }
    for (m, slot) in top.iter_mut().enumerate().take(mids_needed as usize) {
        *slot = mid_mfn(m).raw();
    }
    Ok(mids_needed as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_for_128_mib_and_4_gib() {
        let mut top = [0u64; 512];
        let mut mids = [[0u64; 512]; 4];
        // 128 MiB = 32768 pfns = 64 p2m pages = 1 middle page.
        let used = build(32768, |i| Mfn::new(0x1000 + i), |m| Mfn::new(0x9000 + m as u64), &mut top, &mut mids).unwrap();
        assert_eq!(used, 1);
        assert_eq!(top[0], 0x9000);
        assert_eq!(top[1], 0);
        assert_eq!(mids[0][0], 0x1000);
        assert_eq!(mids[0][63], 0x1000 + 63);
        assert_eq!(mids[0][64], 0);
        // 4 GiB + 1 page does not fit 4 middle pages.
        let e = build((4u64 << 30) / 4096 + 512 * 512, Mfn::new, |m| Mfn::new(m as u64), &mut top, &mut mids).unwrap_err();
        assert!(matches!(e, P2mTreeError::TooLarge { mids_needed: 5, mids_reserved: 4, .. }), "{e}");
        // A p2m that ends mid-page still lists that page.
        assert_eq!(shape(513), (2, 1));
        assert_eq!(build(0, Mfn::new, |m| Mfn::new(m as u64), &mut top, &mut mids), Err(P2mTreeError::Empty));
        println!("checked: 128 MiB p2m -> 64 pages in 1 middle page; 4 GiB+ refused: {e}");
    }
}
