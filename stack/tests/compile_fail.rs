//! The ring API's soundness, checked at compile time (trybuild): a program
//! under `#![forbid(unsafe_code)]` cannot hand the engine memory it does not
//! own. Each program in `ui/fail` tries one way and must fail to compile with
//! the error in its `.stderr` file; the one in `ui/pass` drives the engine
//! through the safe path (requests that name no memory) and must compile and
//! run.
//!
//! After a deliberate change to a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p ringline --test compile_fail` and review
//! the diff.

#[test]
fn safe_code_cannot_name_memory() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
