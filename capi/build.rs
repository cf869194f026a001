//! Gives libringline.so its SONAME (libringline.so.0), so programs linked with
//! -lringline record that name and the installed symlink serves them.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libringline.so.0");
}
