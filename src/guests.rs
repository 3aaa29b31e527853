//! The test guests built by build.rs and carried inside the binary.

/// A bundled guest.
#[derive(Debug)]
pub struct BundledGuest {
    /// Its name (`kmemvisor run NAME`).
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// The ELF image.
    pub elf: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled_guests.rs"));

/// The bundled guest called `name`.
pub fn find(name: &str) -> Option<&'static BundledGuest> {
    BUNDLED.iter().find(|g| g.name == name)
}
