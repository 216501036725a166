//! The browser app in `web/dist` is embedded into the binary (rust-embed):
//! rebuild when any of its files changes, appears or disappears.

fn main() {
    println!("cargo:rerun-if-changed=../web/dist");
}
