//! The test guests and guest modules built by build.rs and carried inside the binary.

/// What a bundled ELF is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A main image: `kmemvisor run NAME`.
    Guest,
    /// A guest module, loaded next to a guest: `kmemvisor run GUEST --module NAME`.
    Module,
}

impl Kind {
    /// The word `kmemvisor list` prints.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Guest => "guest",
            Kind::Module => "module",
        }
    }
}

/// A bundled guest or module.
#[derive(Debug)]
pub struct BundledGuest {
    /// Its name (`kmemvisor run NAME`, `--module NAME`).
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// A guest or a module.
    pub kind: Kind,
    /// The ELF image.
    pub elf: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/bundled_guests.rs"));

/// The bundled guest or module called `name`.
pub fn find(name: &str) -> Option<&'static BundledGuest> {
    BUNDLED.iter().find(|g| g.name == name)
}
