// Only the layer's own requests implement `Op`: a program cannot write one
// whose SQE names memory nobody owns.
#![forbid(unsafe_code)]

use ringline::io::Op;

struct MyRecv(Vec<u8>);

impl Op for MyRecv {}

fn main() {}
