// The engine's access to application memory (and its `Plain` bound on what it
// may read) is private to the `ringline` crate: nothing outside can use it or
// implement `Plain` for a type with invariants.
#![forbid(unsafe_code)]

fn main() {
    let _ = ringline::usermem::slice_mut(0x1000, 64);
}
