//! Declares the `loom` cfg used by the hot ring's model-checking build
//! (`RUSTFLAGS="--cfg loom"`), so ordinary builds do not warn about an unknown cfg.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
