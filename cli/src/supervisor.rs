//! Child processes that stop with their parent.
//!
//! `crowdgate up` runs redis-server, core, the settlement worker and the host
//! as children. Each is asked to receive SIGKILL if `up` dies (Linux
//! `PR_SET_PDEATHSIG`), so even `kill -9` of `up` leaves nothing running; a
//! normal Ctrl-C sends each SIGTERM and waits for it.
//!
//! Each child also runs in its own process group, so the terminal's Ctrl-C
//! (sent to the whole foreground group) reaches only `up`, which then stops
//! the parts in order, rather than every part at once while `up` still
//! watches them and takes their exits for crashes.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Makes the child get SIGKILL when this process exits, and keeps it out of
/// our process group (signals from the terminal are ours to pass on).
pub fn die_with_parent(command: &mut Command) {
    command.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// SIGTERM, then SIGKILL if it has not exited within `grace`.
pub fn terminate(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: sending a signal to our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
