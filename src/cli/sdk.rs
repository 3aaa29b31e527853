//! `kmemvisor sdk install` and `kmemvisor cc`.

use std::process::ExitCode;

use kmemvisor::report::status;
use kmemvisor::sdk::{self, SdkError};

use super::args::{CcArgs, SdkArgs, SdkCommand};
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
        let mut command = sdk::cc_command(&compiler, &prefix, &args.args);
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
