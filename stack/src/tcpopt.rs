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

#[cfg(test)]
mod tests {
    use super::*;

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
