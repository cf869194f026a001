//! Typed ids for the engine's tables. Each is a slot index stored as
//! `index + 1` in a `NonZeroU32`, so `Option<Id>` is four bytes and "no id"
//! is `None` rather than a sentinel. Ids of tables whose slots are reused
//! while something may still name an old occupant carry a generation
//! ([`ListenerId`]).

use std::num::NonZeroU32;

macro_rules! slot_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) struct $name(NonZeroU32);

        impl $name {
            /// The id of slot `i`.
            #[inline]
            pub(crate) fn from_index(i: usize) -> Self {
                let raw = u32::try_from(i + 1).expect("slot index fits in u32");
                $name(NonZeroU32::new(raw).expect("i + 1 > 0"))
            }
            /// The slot index.
            #[inline]
            pub(crate) fn index(self) -> usize {
                (self.0.get() - 1) as usize
            }
        }
    };
}

slot_id!(
    /// A connection slot (reused only after everything naming it let go:
    /// ops are cancelled, the tuple and timer removed, before it is freed).
    ConnId
);
slot_id!(
    /// An in-flight request in the op slab.
    OpId
);
slot_id!(
    /// A link chain (`IOSQE_IO_LINK`).
    ChainId
);

/// A listener: its slot and the generation of the slot's occupant. A
/// connection in handshake names its listener; if the listener closes and
/// the slot is reused, the old id no longer matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListenerId {
    pub(crate) slot: u32,
    pub(crate) gen: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_option_is_free() {
        assert_eq!(ConnId::from_index(0).index(), 0);
        assert_eq!(OpId::from_index(41).index(), 41);
        assert_ne!(ChainId::from_index(1), ChainId::from_index(2));
        assert_eq!(std::mem::size_of::<Option<OpId>>(), 4);
    }
}
