// Payload binaries are linked into the payload window (linker/payload.ld) when built for bare metal.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
        println!("cargo:rustc-link-arg-bins=-T{dir}/../linker/payload.ld");
        println!("cargo:rerun-if-changed={dir}/../linker/payload.ld");
    }
}
