//! Links every guest program with the firmware's linker script (which the
//! firmware's build script generates and puts on the link search path).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-Tkmemvisor.ld");
}
