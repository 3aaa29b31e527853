//! `kmemvisor test`: a manifest of guest tests, in parallel, with TAP and JUnit.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::args::{Cli, TestArgs};
use crate::cli::fail;
use clap::Parser;
use kmemvisor::guests::{self, Kind};
use kmemvisor::report::status;
use kmemvisor::testrun::manifest::{ManifestError, Test};
use kmemvisor::testrun::select::Selection;
use kmemvisor::testrun::{self, output};

/// A usage error of `kmemvisor test`.
pub(crate) fn test_usage(message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("kmemvisor: test: {message}");
    ExitCode::from(status::USAGE)
}

/// Checks a test's `kmemvisor run` command line as `run` would parse it.
pub(crate) fn check_run_options(test: &Test, path: &std::path::Path) -> Result<(), ManifestError> {
    let line = testrun::run::command_line(test, std::path::Path::new("report.json"));
    match Cli::try_parse_from(std::iter::once("kmemvisor".to_owned()).chain(line)) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            Err(ManifestError::Invalid {
                path: path.display().to_string(),
                line: test.options_line,
                test: test.name.clone(),
                key: "options".into(),
                message: format!("`kmemvisor run` refuses them: {first}"),
            })
        }
    }
}

/// `kmemvisor test`: runs the suite a manifest describes.
pub(crate) fn test(args: &TestArgs) -> ExitCode {
    let bundled = |name: &str| guests::find(name).is_some_and(|g| g.kind == Kind::Guest);
    let tests = match testrun::manifest::load(&args.manifest, &bundled) {
        Ok(tests) => tests,
        Err(e) => return test_usage(&e),
    };
    if let Some(e) = tests.iter().find_map(|t| check_run_options(t, &args.manifest).err()) {
        return test_usage(&e);
    }
    let selection = Selection { groups: args.groups.clone(), filter: args.filter.clone(), shard: args.shard };
    let selected = selection.apply(&tests);
    if args.list {
        for t in &selected {
            println!("{}  {} {}  [{}]", t.name, t.guest, t.args.join(" "), t.groups.join(", "));
        }
        return ExitCode::SUCCESS;
    }
    let (dir, keep) = match &args.out {
        Some(dir) => (dir.clone(), true),
        None => (std::env::temp_dir().join(format!("kmemvisor-test.{}", std::process::id())), false),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return test_usage(&format_args!("cannot create {}: {e}", dir.display()));
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&e),
    };
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let config = testrun::run::Config { exe, jobs, dir: dir.clone(), keep };
    let host = testrun::run::Host::probe();
    let tap = args.tap;
    if tap {
        print!("{}", output::tap_header(selected.len()));
    }
    let started = std::time::Instant::now();
    let outcomes = testrun::run::run_all(&selected, &host, &config, &mut |i, outcome| {
        let mut out = std::io::stdout().lock();
        if tap {
            let _ = write!(out, "{}", output::tap_entry(i + 1, outcome));
        } else {
            let _ = writeln!(out, "{}", output::plain(outcome));
            if matches!(outcome.verdict, testrun::verdict::Verdict::Fail(_)) {
                for line in outcome.log.lines() {
                    let _ = writeln!(out, "    | {line}");
                }
            }
        }
        let _ = out.flush();
    });
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let counts = output::Counts::of(&outcomes);
    if let Some(path) = &args.junit {
        let suite = args.manifest.file_stem().map_or_else(|| "kmemvisor".into(), |s| s.to_string_lossy().into_owned());
        if let Err(e) = std::fs::write(path, output::junit(&suite, &outcomes, started.elapsed().as_secs_f64())) {
            eprintln!("kmemvisor: test: cannot write the JUnit results to {}: {e}", path.display());
            return ExitCode::from(status::VMM_ERROR);
        }
    }
    if tap {
        println!("# {}", counts.summary());
    } else {
        println!("{}", counts.summary());
    }
    ExitCode::from(counts.exit_status())
}
