//! `chaoslingr run`: one experiment, with a live progress line and a final summary.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use chaoslingr_domain::engine::{Progress, RunEnd, RunRequest};
use chaoslingr_domain::time::{human, rfc3339};
use chaoslingr_domain::Outcome;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::output::{print_dry_run, print_summary, progress_line};
use chaoslingr_fleet::{Chosen, Fleet};

use crate::{exit, AwsEngine, Failure, RunArgs};

/// SIGINT, SIGTERM and SIGHUP (the terminal or SSH session went away), registered up
/// front: each one means "stop and revert", never "die with the port open".
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
    /// Whether standard output and error were a terminal at start-up.
    terminals: [bool; 2],
}

/// Writes to stderr without panicking: after SIGHUP the terminal may be gone, and a failed
/// write must not stop the revert.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// After SIGHUP the terminal is gone and writing to it fails (`println!` would then panic
/// once the revert is done). Point standard output and error that were that terminal at
/// /dev/null, so the run finishes (revert, record, exit 130) quietly. Whether they were a
/// terminal is known from start-up: a hung-up terminal no longer answers `isatty`.
fn detach_from_hung_up_terminal(terminals: [bool; 2]) {
    use std::os::fd::AsRawFd;
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else { return };
    let fds = [std::io::stdout().as_raw_fd(), std::io::stderr().as_raw_fd()];
    for (fd, was_terminal) in fds.into_iter().zip(terminals) {
        if was_terminal {
            // SAFETY: dup2 on two open descriptors; it replaces `fd` atomically.
            unsafe {
                libc::dup2(null.as_raw_fd(), fd);
            }
        }
    }
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            terminals: [std::io::stdout().is_terminal(), std::io::stderr().is_terminal()],
        })
    }

    /// Resolves with a reason on the first signal.
    async fn first(mut self, fired: Arc<AtomicBool>) -> String {
        let reason = tokio::select! {
            _ = self.interrupt.recv() => "interrupted by Ctrl-C (SIGINT)",
            _ = self.terminate.recv() => "terminated by SIGTERM",
            _ = self.hangup.recv() => {
                detach_from_hung_up_terminal(self.terminals);
                "the terminal hung up (SIGHUP)"
            }
        };
        fired.store(true, Ordering::SeqCst);
        say(&format!("\nchaoslingr: {reason}: reverting the injected rule before exiting..."));
        // Keep the handlers installed (by keeping `self` alive in a detached task) so a
        // second Ctrl-C cannot kill the process in the middle of the revert.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = self.interrupt.recv() => say("chaoslingr: still reverting; please wait"),
                    _ = self.terminate.recv() => say("chaoslingr: still reverting; please wait"),
                    _ = self.hangup.recv() => {}
                }
            }
        });
        reason.to_string()
    }
}

pub async fn run(fleet: &Fleet, args: &RunArgs, signals: Signals) -> Result<u8, Failure> {
    let request = RunRequest { experiment: args.experiment.clone(), target: args.target.clone(), scheduled: false };
    let mut rng = StdRng::from_os_rng();
    let (engine, request) = match fleet.choose(&request, &mut rng).await? {
        Chosen::Scope { member, request } => {
            if !fleet.is_single() {
                eprintln!("chaoslingr: running in {}", member.scope);
            }
            (&member.engine, request)
        }
        Chosen::Ended(end) => return finish(None, end, args, SystemTime::now(), false),
    };
    let tty = std::io::stderr().is_terminal() && !args.json;
    let mut announced = false;
    let mut progress = |p: &Progress<'_>| {
        if !announced {
            announced = true;
            let r = p.record;
            eprintln!(
                "chaoslingr: experiment {} opened {} {} from {} on {} ({}); watching until {} ({})",
                r.id,
                r.protocol,
                r.ports,
                r.cidr,
                r.security_group_id,
                r.security_group_rule_id,
                rfc3339(r.deadline),
                human(r.deadline.duration_since(r.injected_at).unwrap_or_default())
            );
        }
        if tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}", progress_line(p));
            let _ = err.flush();
        }
    };
    let fired = Arc::new(AtomicBool::new(false));
    let cancel = signals.first(fired.clone());
    let started = SystemTime::now();
    let end = engine.run(&request, &mut rng, &mut progress, cancel).await?;
    if tty && announced {
        eprintln!();
    }
    finish(Some(engine), end, args, started, fired.load(Ordering::SeqCst))
}

/// Prints how the run ended and maps it to the exit status. `engine`: the scope's, when
/// a scope was chosen (a dry run's JSON then names its region).
fn finish(
    engine: Option<&AwsEngine>,
    end: RunEnd,
    args: &RunArgs,
    started: SystemTime,
    interrupted: bool,
) -> Result<u8, Failure> {
    match end {
        RunEnd::DryRun(report) => {
            if args.json {
                let mut value = serde_json::to_value(&report).expect("serializable");
                value["region"] = serde_json::json!(engine.and_then(|e| e.region.clone()));
                value["account"] = serde_json::json!(report.plan.account);
                println!("{value}");
            } else {
                print_dry_run(&report);
            }
            Ok(if report.permission_check.starts_with("error") { exit::FAILURE } else { exit::OK })
        }
        RunEnd::Concluded { report, revert, record_failures } => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print_summary(&report, revert.as_ref(), &record_failures, started);
            }
            if !report.reverted {
                return Ok(exit::FAILURE);
            }
            if interrupted {
                return Ok(exit::INTERRUPTED);
            }
            Ok(match report.outcome {
                o if o.hypothesis_held() => exit::OK,
                Outcome::Undetected => exit::UNDETECTED,
                _ => exit::FAILURE,
            })
        }
    }
}
