//! `kmemvisor sdk install`, `kmemvisor cc` and `kmemvisor new`.

use std::process::ExitCode;

use kmemvisor::report::status;
use kmemvisor::sdk::{self, SdkError};

use kmemvisor::new_project::{self, Lang, Source};

use super::args::{CcArgs, NewArgs, SdkArgs, SdkCommand};
use super::report_error;

pub(crate) fn sdk(args: &SdkArgs) -> ExitCode {
    match &args.command {
        SdkCommand::Install { prefix } => match sdk::install(prefix) {
            Ok(files) => {
                let prefix = std::path::absolute(prefix).unwrap_or_else(|_| prefix.clone());
                println!("kmemvisor: installed the C SDK ({} files) in {}", files.len(), prefix.display());
                println!("build a guest with:");
                println!(
                    "  PKG_CONFIG_PATH={}/lib/pkgconfig cc $(pkg-config --cflags --libs kmemvisor) driver.c -o driver.elf",
                    prefix.display()
                );
                println!("then: kmemvisor run driver.elf");
                ExitCode::SUCCESS
            }
            Err(e) => report_error(&e, status::CANNOT_WRITE),
        },
    }
}

/// Runs the compiler; its exit status is ours.
pub(crate) fn cc(args: &CcArgs) -> ExitCode {
    let run = || -> Result<ExitCode, SdkError> {
        let prefix = sdk::cached()?;
        let compiler = sdk::compiler()?;
        let mut command = sdk::cc_command(&compiler, &prefix, args.module, &args.args);
        let exit = command.status().map_err(|source| SdkError::Compiler { compiler: compiler.clone(), source })?;
        Ok(match exit.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        })
    };
    run().unwrap_or_else(|e| {
        let code = match e {
            SdkError::NoCompiler | SdkError::Compiler { .. } => status::VMM_ERROR,
            _ => status::CANNOT_WRITE,
        };
        report_error(&e, code)
    })
}

pub(crate) fn new(args: &NewArgs) -> ExitCode {
    let source = match (&args.source, &args.git) {
        (Some(dir), _) => Some(Source::Path(dir.clone())),
        (None, Some(url)) => Some(Source::Git(url.clone())),
        (None, None) => None,
    };
    let kmemvisor = std::env::current_exe().unwrap_or_else(|_| "kmemvisor".into());
    match new_project::create(&args.dir, &args.name, args.lang, source, &kmemvisor) {
        Ok(files) => {
            let dir = args.dir.join(&args.name);
            println!("kmemvisor: created {} ({} files)", dir.display(), files.len());
            match args.lang {
                Lang::C => println!("build and run it with: cd {} && make run", dir.display()),
                Lang::Rust => println!(
                    "build and run it with: cd {} && cargo build --release && kmemvisor run target/x86_64-unknown-none/release/{}",
                    dir.display(),
                    args.name
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e @ new_project::NewError::Write { .. }) => report_error(&e, status::CANNOT_WRITE),
        Err(e) => report_error(&e, status::USAGE),
    }
}
