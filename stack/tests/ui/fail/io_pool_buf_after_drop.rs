// A received provided buffer is a handle: once dropped (given back to the
// ring, where the engine may refill it) its bytes cannot be read.
#![forbid(unsafe_code)]

use ringline::io::{Completion, PoolBuf};

fn data(mut c: Completion<()>) -> &'static [u8] {
    let buf = c.take_buf().unwrap();
    let bytes: &[u8] = &buf;
    drop(buf);
    bytes
}

fn main() {
    let _ = data;
    let _: Option<PoolBuf> = None;
}
