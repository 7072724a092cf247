//! Acting on a process through a pidfd: the process is the one it names
//! for as long as the descriptor is held, even if its pid is freed and
//! taken again, so a signal never reaches a stranger that inherited a pid.
//! A pidfd names a whole process: a thread's id is refused, so no thread
//! of pid 1 (or of psdiff) can stand for it.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub struct PidFd {
    fd: OwnedFd,
    pid: u32,
}

impl PidFd {
    /// The process `pid`, which must be a process (a thread-group leader),
    /// not one of its threads.
    pub fn open(pid: u32) -> std::io::Result<PidFd> {
        let pid_t =
            libc::pid_t::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; nothing of ours is read or written.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid_t, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the descriptor was just returned to us and is owned by
        // nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(PidFd { fd, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn signal(&self, signal: Signal) -> std::io::Result<()> {
        // SAFETY: pidfd_send_signal reads no memory of ours (info is null).
        let done = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if done < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether the process has ended (its pidfd is readable).
    pub fn ended(&self) -> bool {
        self.wait_end(Duration::ZERO)
    }

    /// Waits up to `limit` for the process to end; whether it did.
    pub fn wait_end(&self, limit: Duration) -> bool {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left.as_millis().min(60_000) as i32)
                .unwrap_or(PollTimeout::ZERO);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(n) if n > 0 => return true,
                Ok(_) if left.is_zero() => return false,
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
    }
}
