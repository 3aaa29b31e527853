//! `kmemvisor new`: a guest project that builds the first time, from any
//! folder — a Cargo project on the guest library and firmware, or a C
//! project on the SDK (through `kmemvisor cc`).

use std::fs;
use std::path::{Path, PathBuf};

/// The language of a new guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Cargo project: `cargo build --release`.
    Rust,
    /// A C file and a Makefile: `make`.
    C,
}

/// Where a Rust guest gets the guest library and firmware from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A kmemvisor checkout.
    Path(PathBuf),
    /// A git repository of kmemvisor.
    Git(String),
}

/// What can go wrong creating a project.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// Cargo package names and C file names want this.
    #[error("`{0}` is not a usable project name: use letters, digits, `-` and `_`, starting with a letter")]
    BadName(String),
    /// Nothing is overwritten.
    #[error("{0} already exists: kmemvisor new does not overwrite anything")]
    Exists(PathBuf),
    /// A Rust guest needs the guest library's sources.
    #[error(
        "a Rust guest needs the kmemvisor sources for its guest library and firmware, and the checkout this \
         kmemvisor was built from ({0}) is gone: give --source DIR (a kmemvisor checkout) or --git URL"
    )]
    NoSource(PathBuf),
    /// A Makefile names paths as text.
    #[error("{0} is not valid UTF-8: the project files could not name it")]
    NotUtf8(PathBuf),
    /// A file or directory could not be written.
    #[error("cannot write {path}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The checkout this binary was built from.
pub fn built_from() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn valid_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64
}

fn utf8(path: &Path) -> Result<&str, NewError> {
    path.to_str().ok_or_else(|| NewError::NotUtf8(path.to_owned()))
}

/// Creates the project `name` in `parent`/`name`; returns the files written.
/// `kmemvisor` is the binary the C project's Makefile calls.
pub fn create(parent: &Path, name: &str, lang: Lang, source: Option<Source>, kmemvisor: &Path) -> Result<Vec<PathBuf>, NewError> {
    if !valid_name(name) {
        return Err(NewError::BadName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    let files: Vec<(String, String)> = match lang {
        Lang::Rust => {
            let dependency = |package: &str, path: &str| -> Result<String, NewError> {
                Ok(match &source {
                    Some(Source::Git(url)) => format!("{package} = {{ git = {url:?} }}"),
                    Some(Source::Path(checkout)) => {
                        let checkout = std::path::absolute(checkout).unwrap_or_else(|_| checkout.clone());
                        format!("{package} = {{ path = {:?} }}", utf8(&checkout.join(path))?)
                    }
                    None => {
                        let checkout = built_from();
                        if !checkout.join("guest/lib/Cargo.toml").is_file() {
                            return Err(NewError::NoSource(checkout));
                        }
                        format!("{package} = {{ path = {:?} }}", utf8(&checkout.join(path))?)
                    }
                })
            };
            let dependencies =
                format!("{}\n{}\n", dependency("kmemvisor-guest", "guest/lib")?, dependency("kmemvisor-firmware", "firmware")?);
            rust_files(name, &dependencies)
        }
        Lang::C => c_files(name, utf8(kmemvisor)?),
    };
    let mut written = Vec::new();
    for (relative, contents) in files {
        let path = dir.join(relative);
        let fail = |source| NewError::Write { path: path.clone(), source };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(fail)?;
        }
        fs::write(&path, contents).map_err(fail)?;
        written.push(path);
    }
    Ok(written)
}

/// The files of a Rust guest.
fn rust_files(name: &str, dependencies: &str) -> Vec<(String, String)> {
    let fill = |template: &str| template.replace("{name}", name).replace("{dependencies}", dependencies);
    vec![
        ("Cargo.toml".to_owned(), fill(include_str!("rust/Cargo.toml.in"))),
        (".cargo/config.toml".to_owned(), fill(include_str!("rust/config.toml.in"))),
        ("rust-toolchain.toml".to_owned(), include_str!("../../rust-toolchain.toml").to_owned()),
        ("build.rs".to_owned(), fill(include_str!("rust/build.rs.in"))),
        ("src/main.rs".to_owned(), fill(include_str!("rust/main.rs.in"))),
    ]
}

/// The files of a C guest.
fn c_files(name: &str, kmemvisor: &str) -> Vec<(String, String)> {
    let fill = |template: &str| template.replace("{name}", name).replace("{kmemvisor}", kmemvisor);
    vec![("Makefile".to_owned(), fill(include_str!("c/Makefile.in"))), (format!("{name}.c"), fill(include_str!("c/main.c.in")))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_cargo_and_make() {
        assert!(valid_name("my-driver_2"));
        for bad in ["", "2x", "a b", "a/b", "../x", "x$y", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn nothing_is_overwritten_and_templates_are_filled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = Some(Source::Git("https://example.invalid/kmemvisor.git".to_owned()));
        let files = create(dir.path(), "drv", Lang::Rust, source.clone(), Path::new("/bin/kmemvisor")).expect("create");
        assert_eq!(files.len(), 5);
        let toml = fs::read_to_string(dir.path().join("drv/Cargo.toml")).expect("Cargo.toml");
        assert!(
            toml.contains("name = \"drv\"")
                && toml.contains("kmemvisor-guest = { git = \"https://example.invalid/kmemvisor.git\" }")
        );
        assert!(!files.iter().any(|f| fs::read_to_string(f).expect("file").contains("{name}")));
        assert!(matches!(create(dir.path(), "drv", Lang::C, source, Path::new("/bin/kmemvisor")), Err(NewError::Exists(_))));
        create(dir.path(), "cdrv", Lang::C, None, Path::new("/opt/kmv/kmemvisor")).expect("create C");
        let makefile = fs::read_to_string(dir.path().join("cdrv/Makefile")).expect("Makefile");
        assert!(makefile.contains("KMEMVISOR ?= /opt/kmv/kmemvisor") && makefile.contains("cdrv.elf: cdrv.c"));
    }
}
