//! The kernel's process events (netlink proc connector): fork, exec and
//! exit as they happen, so a child born after the watch began is followed
//! even if it exits before anyone could read its /proc entry.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::socket::{MsgFlags, NetlinkAddr, bind, recv, send};

const NETLINK_CONNECTOR: i32 = 11;
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
const PROC_CN_MCAST_LISTEN: u32 = 1;
const NLMSG_DONE: u16 = 3;
/// nlmsghdr (16) + cn_msg (20) + what, cpu, timestamp (16).
const DATA_AT: usize = 52;

/// One process event; pids are process ids (thread group ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcEvent {
    Fork { parent: u32, child: u32 },
    Exec { pid: u32 },
    Exit { pid: u32 },
}

pub struct Connector {
    socket: OwnedFd,
}

impl Connector {
    /// Subscribes to process events. Needs CAP_NET_ADMIN and a kernel with
    /// CONFIG_PROC_EVENTS; the error says which call failed.
    pub fn open() -> std::io::Result<Connector> {
        // SAFETY: socket() takes only integers; the result is checked and
        // owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                NETLINK_CONNECTOR,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        bind(socket.as_raw_fd(), &NetlinkAddr::new(0, CN_IDX_PROC))?;
        let mut message = Vec::with_capacity(40);
        let op = PROC_CN_MCAST_LISTEN.to_ne_bytes();
        message.extend_from_slice(&(16u32 + 20 + 4).to_ne_bytes());
        message.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&0u32.to_ne_bytes());
        message.extend_from_slice(&std::process::id().to_ne_bytes());
        for field in [CN_IDX_PROC, CN_VAL_PROC, 0, 0] {
            message.extend_from_slice(&field.to_ne_bytes());
        }
        message.extend_from_slice(&4u16.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&op);
        send(socket.as_raw_fd(), &message, MsgFlags::empty())?;
        Ok(Connector { socket })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.socket
    }

    /// Every event queued now. `Err` with ENOBUFS means the kernel dropped
    /// events because we read too slowly.
    pub fn read(&self, into: &mut Vec<ProcEvent>) -> std::io::Result<()> {
        let mut buffer = [0u8; 8192];
        loop {
            match recv(self.socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
                Ok(n) => parse_messages(&buffer[..n], into),
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The events in one datagram (which may hold several netlink messages).
fn parse_messages(mut bytes: &[u8], into: &mut Vec<ProcEvent>) {
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while let Some(length) = u32_at(bytes, 0).map(|l| l as usize) {
        if length < 16 || length > bytes.len() {
            return;
        }
        let message = &bytes[..length];
        let event = u32_at(message, 36).and_then(|what| match what {
            0x1 => Some(ProcEvent::Fork {
                parent: u32_at(message, DATA_AT + 4)?,
                child: thread_group_leader(message)?,
            }),
            0x2 => Some(ProcEvent::Exec {
                pid: u32_at(message, DATA_AT + 4)?,
            }),
            0x8000_0000 => {
                let (pid, tgid) = (u32_at(message, DATA_AT)?, u32_at(message, DATA_AT + 4)?);
                // A thread's exit is not its process's.
                (pid == tgid).then_some(ProcEvent::Exit { pid })
            }
            _ => None,
        });
        into.extend(event);
        // Messages are aligned to 4 bytes.
        let next = length.div_ceil(4) * 4;
        bytes = bytes.get(next..).unwrap_or(&[]);
    }
}

/// The new process of a fork event; `None` for a new thread.
fn thread_group_leader(message: &[u8]) -> Option<u32> {
    let at = |i: usize| {
        Some(u32::from_ne_bytes(
            message.get(DATA_AT + i..DATA_AT + i + 4)?.try_into().ok()?,
        ))
    };
    let (child_pid, child_tgid) = (at(8)?, at(12)?);
    (child_pid == child_tgid).then_some(child_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(what: u32, data: [u32; 4]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&76u32.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&[0u8; 20]);
        m.extend_from_slice(&what.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        for d in data {
            m.extend_from_slice(&d.to_ne_bytes());
        }
        m.resize(76, 0);
        m
    }

    #[test]
    fn fork_exec_and_exit_are_read_and_threads_left_out() {
        let mut bytes = message(1, [10, 10, 11, 11]);
        bytes.extend(message(1, [10, 10, 12, 10]));
        bytes.extend(message(2, [11, 11, 0, 0]));
        bytes.extend(message(0x8000_0000, [12, 10, 0, 0]));
        bytes.extend(message(0x8000_0000, [11, 11, 0, 0]));
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut events = Vec::new();
        parse_messages(&bytes, &mut events);
        assert_eq!(
            events,
            [
                ProcEvent::Fork {
                    parent: 10,
                    child: 11
                },
                ProcEvent::Exec { pid: 11 },
                ProcEvent::Exit { pid: 11 },
            ]
        );
    }
}
