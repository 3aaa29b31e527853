//! Running the selected tests: what the host allows (KVM, userfaultfd), one
//! child `kmemvisor run` per test with its own timeout, and a pool of
//! workers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::manifest::Test;
use super::verdict::{Verdict, judge};

/// How long past its own timeout a child may take to stop before it is killed.
const GRACE: Duration = Duration::from_secs(10);
/// The lines of a child's output kept for a failure's details.
const LOG_LINES: usize = 40;

/// Why a test could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The report or log file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The child could not be started or waited for.
    #[error("cannot run {exe}: {source}")]
    Spawn {
        /// The kmemvisor binary.
        exe: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What the host allows, probed once before the tests run.
#[derive(Clone, Debug)]
pub struct Host {
    /// `Err(reason)` when no test can run.
    pub kvm: Result<(), String>,
    /// `Err(reason)` when tests that need userfaultfd cannot run.
    pub userfaultfd: Result<(), String>,
    /// KVM's largest number of vCPUs for one VM, when known.
    pub max_vcpus: Option<usize>,
}

/// Whether `device` can be opened read-write as KVM needs, and if not, why.
pub fn probe_kvm(device: &Path) -> Result<(), String> {
    match std::fs::OpenOptions::new().read(true).write(true).open(device) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{} is missing: KVM is not available on this host ({e})", device.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "{} cannot be opened read-write ({e}): join the group that owns it (usually `kvm`) or run as root",
            device.display()
        )),
        Err(e) => Err(format!("{} cannot be opened read-write: {e}", device.display())),
    }
}

/// Whether this process may create a userfaultfd, as hiding pages needs.
pub fn probe_userfaultfd() -> Result<(), String> {
    // SAFETY: the userfaultfd syscall takes one flags argument and returns a
    // new file descriptor or -1; it touches no memory of this process.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) => "userfaultfd is not permitted: run as root or with CAP_SYS_PTRACE, or set the sysctl \
                                  vm.unprivileged_userfaultfd=1"
                .to_owned(),
            _ => format!("userfaultfd is not available: {e}"),
        });
    }
    // SAFETY: `fd` is the descriptor just created, owned by nothing else; it
    // is closed once. It fits an i32: the kernel returns an int.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

impl Host {
    /// Probes this host. `KMEMVISOR_SKIP_KVM=1` skips every test on purpose.
    pub fn probe() -> Host {
        let kvm = if std::env::var("KMEMVISOR_SKIP_KVM").is_ok_and(|v| v == "1") {
            Err("KMEMVISOR_SKIP_KVM=1".to_owned())
        } else {
            probe_kvm(Path::new("/dev/kvm"))
        };
        let max_vcpus = kvm.is_ok().then(|| kvm_ioctls::Kvm::new().ok().map(|k| k.get_max_vcpus())).flatten();
        Host { kvm, userfaultfd: probe_userfaultfd(), max_vcpus }
    }

    /// Why `test` cannot run here, if it cannot.
    pub fn skip_reason(&self, test: &Test) -> Option<String> {
        if let Err(why) = &self.kvm {
            return Some(why.clone());
        }
        if test.needs_userfaultfd
            && let Err(why) = &self.userfaultfd
        {
            return Some(why.clone());
        }
        match (test.vcpus, self.max_vcpus) {
            (Some(n), Some(max)) if usize::from(n) > max => Some(format!("needs {n} vCPUs, KVM gives a VM at most {max}")),
            _ => None,
        }
    }
}

/// How a test ended, with what the runner saw.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The test's name.
    pub name: String,
    /// Pass, fail or skip.
    pub verdict: Verdict,
    /// The child's exit status (`None`: not run, or killed by a signal).
    pub status: Option<i32>,
    /// The violation kinds of its report, in order.
    pub violations: Vec<String>,
    /// Its report, when one was written and is kept.
    pub report: Option<PathBuf>,
    /// Wall-clock time of the run.
    pub seconds: f64,
    /// The last lines of the child's stdout and stderr.
    pub log: String,
}

impl Outcome {
    /// A test that did not run.
    pub fn skipped(test: &Test, reason: String) -> Outcome {
        Outcome {
            name: test.name.clone(),
            verdict: Verdict::Skip(reason),
            status: None,
            violations: Vec::new(),
            report: None,
            seconds: 0.0,
            log: String::new(),
        }
    }
}

/// How the tests run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The kmemvisor binary the children run.
    pub exe: PathBuf,
    /// How many run at once.
    pub jobs: usize,
    /// Where each test's report (NAME.json) and output (NAME.log) go.
    pub dir: PathBuf,
    /// Whether the reports stay there (`--out`), to be named in the results.
    pub keep: bool,
}

/// The command line of `test`'s child, writing its report to `report`.
pub fn command_line(test: &Test, report: &Path) -> Vec<String> {
    let mut line = vec!["run".to_owned(), test.guest.clone()];
    line.extend(test.options.iter().cloned());
    line.extend(["--timeout".to_owned(), test.timeout.to_string()]);
    if let Some(n) = test.vcpus {
        line.extend(["--vcpus".to_owned(), n.to_string()]);
    }
    line.extend(["--report".to_owned(), report.display().to_string()]);
    if !test.args.is_empty() {
        line.push("--".to_owned());
        line.extend(test.args.iter().cloned());
    }
    line
}

/// The violation kinds of the report at `path`, if it can be read.
fn report_kinds(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let report: serde_json::Value = serde_json::from_str(&text).ok()?;
    let kinds = report.get("violations")?.as_array()?.iter().map(|v| v["kind"].as_str().unwrap_or("").to_owned());
    Some(kinds.collect())
}

/// The last [`LOG_LINES`] lines of the file at `path`.
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
}

/// Runs `test` as a child process and judges it.
pub fn run_one(test: &Test, config: &Config) -> Result<Outcome, RunError> {
    let report = config.dir.join(format!("{}.json", test.name));
    let log_path = config.dir.join(format!("{}.log", test.name));
    // A report left by an earlier run must not be read as this one's.
    let _ = std::fs::remove_file(&report);
    let create = |path: &Path| File::create(path).map_err(|source| RunError::Create { path: path.to_owned(), source });
    let log = create(&log_path)?;
    let log_err = log.try_clone().map_err(|source| RunError::Create { path: log_path.clone(), source })?;
    let spawn_error = |source| RunError::Spawn { exe: config.exe.clone(), source };
    let started = Instant::now();
    let mut child = Command::new(&config.exe)
        .args(command_line(test, &report))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .map_err(spawn_error)?;
    let deadline = started + Duration::from_secs(test.timeout) + GRACE;
    let (status, killed) = loop {
        if let Some(status) = child.try_wait().map_err(spawn_error)? {
            break (status.code(), false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = started.elapsed().as_secs_f64();
    let found = report_kinds(&report);
    let verdict = if killed {
        Verdict::Fail(format!("still running {} s after its {} s timeout: killed", GRACE.as_secs(), test.timeout))
    } else {
        judge(test.status, test.violations.as_deref(), status, found.as_deref())
    };
    let kept = config.keep && found.is_some();
    Ok(Outcome {
        name: test.name.clone(),
        verdict,
        status,
        violations: found.unwrap_or_default(),
        report: kept.then_some(report),
        seconds,
        log: tail(&log_path),
    })
}

/// The results collected so far, and the callback that hears them in order.
struct Collected<'f> {
    outcomes: Vec<Option<Outcome>>,
    next: usize,
    on_result: &'f mut (dyn FnMut(usize, &Outcome) + Send),
}

/// Runs `tests` on `config.jobs` workers, skipping what `host` does not
/// allow. `on_result` hears each outcome in manifest order, as soon as it
/// and every one before it are known.
pub fn run_all(
    tests: &[&Test],
    host: &Host,
    config: &Config,
    on_result: &mut (dyn FnMut(usize, &Outcome) + Send),
) -> Vec<Outcome> {
    let collected = Mutex::new(Collected { outcomes: vec![None; tests.len()], next: 0, on_result });
    let next_test = AtomicUsize::new(0);
    let worker = || {
        loop {
            let i = next_test.fetch_add(1, Ordering::Relaxed);
            let Some(test) = tests.get(i) else { break };
            let outcome = match host.skip_reason(test) {
                Some(reason) => Outcome::skipped(test, reason),
                None => run_one(test, config).unwrap_or_else(|e| Outcome {
                    verdict: Verdict::Fail(e.to_string()),
                    ..Outcome::skipped(test, String::new())
                }),
            };
            let mut c = collected.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            c.outcomes[i] = Some(outcome);
            while let Some(Some(done)) = c.outcomes.get(c.next) {
                let done = done.clone();
                let at = c.next;
                (c.on_result)(at, &done);
                c.next += 1;
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.clamp(1, tests.len().max(1)) {
            scope.spawn(worker);
        }
    });
    let collected = collected.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    collected.outcomes.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_and_its_reason() {
        let why = probe_kvm(Path::new("/nonexistent/kvm")).expect_err("missing");
        assert!(why.starts_with("/nonexistent/kvm is missing"), "{why}");
    }

    #[test]
    fn the_child_gets_the_options_timeout_report_and_arguments() {
        let test = super::super::manifest::parse(
            "[[test]]\nname = \"t\"\nguest = \"g\"\noptions = [\"--mem\", \"128M\"]\nargs = [\"a\", \"b\"]\ntimeout = 7\nneeds = { vcpus = 2 }\n",
            "m",
            Path::new("."),
            &|g| g == "g",
        )
        .expect("manifest")
        .remove(0);
        assert_eq!(
            command_line(&test, Path::new("/r/t.json")),
            ["run", "g", "--mem", "128M", "--timeout", "7", "--vcpus", "2", "--report", "/r/t.json", "--", "a", "b"]
        );
    }

    #[test]
    fn skips_name_their_reason() {
        let test = |uffd, vcpus| Test {
            name: "t".into(),
            guest: "g".into(),
            options: vec![],
            args: vec![],
            groups: vec![],
            timeout: 1,
            status: 0,
            violations: None,
            needs_userfaultfd: uffd,
            vcpus,
            line: 1,
            options_line: 1,
        };
        let host = Host { kvm: Ok(()), userfaultfd: Err("no uffd".into()), max_vcpus: Some(4) };
        assert_eq!(host.skip_reason(&test(false, None)), None);
        assert_eq!(host.skip_reason(&test(true, None)).as_deref(), Some("no uffd"));
        assert_eq!(host.skip_reason(&test(false, Some(8))).as_deref(), Some("needs 8 vCPUs, KVM gives a VM at most 4"));
        let no_kvm = Host { kvm: Err("no kvm".into()), ..host };
        assert_eq!(no_kvm.skip_reason(&test(true, None)).as_deref(), Some("no kvm"));
    }
}
