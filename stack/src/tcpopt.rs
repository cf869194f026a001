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

/// Room for options in a TCP header.
pub(crate) const MAX_LEN: usize = 40;

/// Options `opts` with a D-SACK block (RFC 2883: the duplicate segment
/// `dsack` reported first) put before the SACK blocks `opts` carried, into
/// `out`; returns the new options' length (a multiple of 4). The other
/// options are kept, NOPs rebuilt; blocks that do not fit are left out (the
/// D-SACK always fits beside what smoltcp sends on an ACK: timestamps and
/// one block). Reading stops at a malformed option, as in [`options`].
/// `None` if the other options leave no room for a block.
pub(crate) fn with_dsack(opts: &[u8], dsack: (u32, u32), out: &mut [u8; MAX_LEN]) -> Option<usize> {
    let mut n = 0;
    let mut blocks = [(0u32, 0u32); 4];
    blocks[0] = dsack;
    let mut nb = 1;
    for (kind, r) in options(opts) {
        if kind == SACK {
            for e in opts[r].chunks_exact(8) {
                let b = (
                    u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
                    u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
                );
                if b != dsack && nb < blocks.len() {
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
        let n = with_dsack(&o, (100, 200), &mut out).unwrap();
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
        let n = with_dsack(&[], (5, 9), &mut out).unwrap();
        assert_eq!(&out[..n], &[1, 1, 5, 10, 0, 0, 0, 5, 0, 0, 0, 9]);
        // Options that leave no room for a block: nothing built.
        let mut big = vec![30u8, 36];
        big.resize(36, 0);
        assert_eq!(with_dsack(&big, (5, 9), &mut out), None);
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
}
