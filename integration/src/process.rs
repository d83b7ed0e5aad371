//! Child processes the test owns: they cannot outlive it.
//!
//! Each child runs in its own process group (so Envoy started from a test is not tied to the
//! terminal's group and the whole group can be signalled), and gets `PR_SET_PDEATHSIG =
//! SIGKILL`, so even a test binary killed with SIGKILL takes its Envoys with it. The death
//! signal fires when the *thread* that forked the child exits, so every child is forked from
//! one long-lived spawner thread rather than from the (short-lived) test thread.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;
const PR_SET_PDEATHSIG: i32 = 1;

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, ...) -> i32;
    fn getppid() -> i32;
}

type Job = Box<dyn FnOnce() + Send>;

/// Runs `f` on the process-lifetime spawner thread and returns its result.
fn on_spawner_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("integration-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("start spawner thread");
        Mutex::new(tx)
    });
    let (done_tx, done_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(Box::new(move || {
            let _ = done_tx.send(f());
        }))
        .expect("spawner thread is gone");
    done_rx.recv().expect("spawner thread dropped the job")
}

/// A child process that is terminated (its whole process group) when dropped.
pub(crate) struct OwnedChild {
    child: Child,
    status: Option<ExitStatus>,
}

impl OwnedChild {
    pub(crate) fn spawn(mut cmd: Command) -> io::Result<OwnedChild> {
        cmd.process_group(0);
        let parent = std::process::id() as i32;
        // SAFETY: the closure only makes async-signal-safe syscalls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if prctl(PR_SET_PDEATHSIG, SIGKILL as std::ffi::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent died between fork and prctl: do not run orphaned.
                if getppid() != parent {
                    return Err(io::Error::other("parent exited before exec"));
                }
                Ok(())
            });
        }
        let child = on_spawner_thread(move || cmd.spawn())?;
        Ok(OwnedChild {
            child,
            status: None,
        })
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited (reaps it), `None` while it runs.
    pub(crate) fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM to the process group, then SIGKILL after a grace period; always reaps.
    pub(crate) fn terminate(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            return Some(status);
        }
        let pgid = self.child.id() as i32;
        // SAFETY: plain syscall; the group is ours (process_group(0) made pgid == pid) and
        // the leader is not reaped yet, so the id cannot have been reused.
        unsafe { kill(-pgid, SIGTERM) };
        if let Some(status) = self.wait_timeout(Duration::from_secs(5)) {
            return Some(status);
        }
        // SAFETY: as above.
        unsafe { kill(-pgid, SIGKILL) };
        match self.child.wait() {
            Ok(status) => {
                self.status = Some(status);
                Some(status)
            }
            Err(_) => None,
        }
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        self.terminate();
    }
}
