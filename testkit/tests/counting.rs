//! The counting allocator counts the watched thread's allocations, and only
//! those, and `reset` clears the count.

use std::hint::black_box;
use std::sync::{Arc, Barrier};

use ringline_testkit::counting::{self, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn counts_only_while_watching_and_only_this_thread() {
    // Another thread allocates while this one watches (spawned beforehand:
    // spawning allocates on this thread).
    let go = Arc::new(Barrier::new(2));
    let other = std::thread::spawn({
        let go = go.clone();
        move || {
            go.wait();
            drop(black_box(Box::new(7u32)));
            go.wait();
        }
    });
    counting::reset();
    drop(black_box(vec![1u8; 64]));
    assert_eq!(counting::allocations(), 0, "not watching yet");

    counting::watch();
    assert_eq!(
        counting::allocations(),
        0,
        "watch's own probe is not counted"
    );
    let mut v: Vec<u64> = black_box(Vec::with_capacity(4));
    v.extend(black_box([1, 2, 3, 4, 5])); // grows: one realloc
    let z = black_box(vec![0u8; 4096]); // alloc_zeroed
    go.wait();
    go.wait();
    counting::unwatch();
    other.join().unwrap();
    assert_eq!(
        counting::allocations(),
        3,
        "alloc, realloc, alloc_zeroed here"
    );
    drop((v, z));

    counting::reset();
    assert_eq!(counting::allocations(), 0);
}
