//! TCP header options, read without allocating: one walker for the engine's
//! readers (the SYN's MSS and window scale, the peer's SACK blocks for
//! loss recovery, and the SACK edges a cookie connection translates).

use std::ops::Range;

/// Option kinds the engine reads.
pub(crate) const MSS: u8 = 2;
pub(crate) const WSCALE: u8 = 3;
pub(crate) const SACK: u8 = 5;

/// The options in `opts` (a TCP header's bytes past the fixed 20), each as
/// its kind and the range of its data in `opts`. Stops at end-of-list or at
/// a malformed length (smoltcp judges the segment itself).
pub(crate) fn options(opts: &[u8]) -> impl Iterator<Item = (u8, Range<usize>)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || loop {
        match *opts.get(i)? {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                let data = i + 2..i + len;
                i += len;
                return Some((kind, data));
            }
        }
    })
}

/// The data range of the first option of `kind`, if any.
pub(crate) fn find(opts: &[u8], kind: u8) -> Option<Range<usize>> {
    options(opts).find(|(k, _)| *k == kind).map(|(_, r)| r)
}

/// A SACK block's edges from its 8 bytes.
fn block(e: &[u8]) -> (u32, u32) {
    (
        u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
        u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
    )
}

/// The blocks of the SACK option in `opts`, if any, in order.
pub(crate) fn sack_blocks(opts: &[u8]) -> impl Iterator<Item = (u32, u32)> + '_ {
    find(opts, SACK)
        .into_iter()
        .flat_map(move |r| opts[r].chunks_exact(8).map(block))
}

/// Room for options in a TCP header.
pub(crate) const MAX_LEN: usize = 40;

/// `a` is after `b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Options `opts` rebuilt into `out` with SACK blocks in this order: the
/// D-SACK `dsack` if any (RFC 2883: the duplicate segment reported first),
/// the blocks `opts` carried, then those of `extra` that overlap none of
/// them (more blocks of data held out of order, RFC 2018: a receiver
/// includes as many as fit, the most recent first), as many as fit in all.
/// Returns the new options' length (a multiple of 4). The other options are
/// kept, NOPs rebuilt; blocks that do not fit are left out (a D-SACK always
/// fits beside what smoltcp sends on an ACK: timestamps and one block).
/// Reading stops at a malformed option, as in [`options`]. `None` if the
/// other options leave no room for a block.
pub(crate) fn with_blocks(
    opts: &[u8],
    dsack: Option<(u32, u32)>,
    extra: &[(u32, u32)],
    out: &mut [u8; MAX_LEN],
) -> Option<usize> {
    let mut n = 0;
    let mut blocks = [(0u32, 0u32); 4];
    let mut nb = 0;
    if let Some(d) = dsack {
        blocks[0] = d;
        nb = 1;
    }
    for (kind, r) in options(opts) {
        if kind == SACK {
            for b in opts[r].chunks_exact(8).map(block) {
                if Some(b) != dsack && nb < blocks.len() {
                    blocks[nb] = b;
                    nb += 1;
                }
            }
        } else {
            let o = opts.get(r.start - 2..r.end)?;
            out.get_mut(n..n + o.len())?.copy_from_slice(o);
            n += o.len();
        }
    }
    let first = usize::from(dsack.is_some());
    for &(l, r) in extra {
        if nb == blocks.len() {
            break;
        }
        let known = blocks[first..nb]
            .iter()
            .any(|&(bl, br)| after(r, bl) && after(br, l));
        if !known {
            blocks[nb] = (l, r);
            nb += 1;
        }
    }
    while n % 4 != 0 {
        out[n] = 1;
        n += 1;
    }
    let fit = (MAX_LEN.checked_sub(n + 4)? / 8).min(nb);
    if fit == 0 {
        return None;
    }
    out[n..n + 4].copy_from_slice(&[1, 1, SACK, (2 + 8 * fit) as u8]);
    n += 4;
    for &(l, r) in &blocks[..fit] {
        out[n..n + 4].copy_from_slice(&l.to_be_bytes());
        out[n + 4..n + 8].copy_from_slice(&r.to_be_bytes());
        n += 8;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsack_goes_first_beside_the_timestamps_and_the_sockets_block() {
        // NOP NOP TS(10) NOP NOP SACK(1 block: 300..400)
        let mut o = vec![1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 1, 5, 10];
        o.extend_from_slice(&300u32.to_be_bytes());
        o.extend_from_slice(&400u32.to_be_bytes());
        let mut out = [0u8; MAX_LEN];
        let n = with_blocks(&o, Some((100, 200)), &[], &mut out).unwrap();
        assert_eq!(n % 4, 0);
        let got: Vec<_> = options(&out[..n]).collect();
        assert_eq!(got[0], (8, 2..10), "timestamps kept");
        let sack = find(&out[..n], SACK).unwrap();
        let edges: Vec<u32> = out[sack]
            .chunks_exact(4)
            .map(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
            .collect();
        assert_eq!(
            edges,
            vec![100, 200, 300, 400],
            "D-SACK first, then the socket's block"
        );
        // No options at all: just the D-SACK.
        let n = with_blocks(&[], Some((5, 9)), &[], &mut out).unwrap();
        assert_eq!(&out[..n], &[1, 1, 5, 10, 0, 0, 0, 5, 0, 0, 0, 9]);
        // Options that leave no room for a block: nothing built.
        let mut big = vec![30u8, 36];
        big.resize(36, 0);
        assert_eq!(with_blocks(&big, Some((5, 9)), &[], &mut out), None);
    }

    #[test]
    fn walks_nops_skips_unknown_and_stops_at_eol_or_bad_lengths() {
        // NOP NOP TS(10) MSS(4) SACK(10) EOL junk
        let o = [
            1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 2, 4, 5, 0xb4, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0,
            9, 9,
        ];
        let got: Vec<_> = options(&o).collect();
        assert_eq!(got, vec![(8, 4..12), (MSS, 14..16), (SACK, 18..26)]);
        assert_eq!(find(&o, SACK), Some(18..26));
        assert_eq!(find(&[5, 40, 0, 0], SACK), None, "length past the end");
        assert_eq!(find(&[5, 1, 0, 0], SACK), None, "length below 2");
        assert_eq!(find(&[1, 1], MSS), None);
    }

    #[test]
    fn more_blocks_follow_the_sockets_one_without_repeating_it() {
        // SACK(1 block: 300..400), as smoltcp sends on an ACK.
        let mut o = vec![1, 1, 5, 10];
        o.extend_from_slice(&300u32.to_be_bytes());
        o.extend_from_slice(&400u32.to_be_bytes());
        let mut out = [0u8; MAX_LEN];
        // 350..400 overlaps the socket's block: left out; the rest follow,
        // as many as fit (four blocks in all without timestamps).
        let extra = [
            (350, 400),
            (500, 600),
            (700, 800),
            (900, 1000),
            (1100, 1200),
        ];
        let n = with_blocks(&o, None, &extra, &mut out).unwrap();
        let sack = find(&out[..n], SACK).unwrap();
        let edges: Vec<u32> = out[sack]
            .chunks_exact(4)
            .map(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
            .collect();
        assert_eq!(edges, vec![300, 400, 500, 600, 700, 800, 900, 1000]);
        // A D-SACK first, then the socket's block, then what fits.
        let n = with_blocks(&o, Some((10, 20)), &extra, &mut out).unwrap();
        let sack = find(&out[..n], SACK).unwrap();
        assert_eq!(sack.len(), 32);
        assert_eq!(&out[sack.start..sack.start + 4], &10u32.to_be_bytes());
    }
}
