//! The kernel's process events (netlink proc connector): fork, exec and
//! exit as they happen, so a child born after a watch began is followed
//! even if it exits before anyone could read its /proc entry. `psdiff
//! files` follows a tree with them, `psdiff watch` journals every process.
//!
//! The kernel takes subscriptions only from root (CAP_NET_ADMIN) in the
//! first pid and user namespace, and its pids are that namespace's; a
//! subscription it does not answer is refused here.

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
    Fork {
        parent: u32,
        child: u32,
    },
    Exec {
        pid: u32,
    },
    /// `status` is the wait status (`WEXITSTATUS`, `WTERMSIG`).
    Exit {
        pid: u32,
        status: u32,
    },
}

pub struct Connector {
    socket: OwnedFd,
    /// The last sequence number seen from each CPU: the kernel numbers
    /// each CPU's events, so a gap is events dropped on the way.
    last_seq: Vec<Option<u32>>,
    /// Events known lost: gaps in the sequence, and ENOBUFS (uncounted
    /// losses, each counted as one).
    lost: u64,
    /// Events read while waiting for the kernel's answer, for the first
    /// `read`.
    pending: Vec<ProcEvent>,
}

/// The kernel's answer to a subscription (`PROC_EVENT_NONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    ack: u32,
    err: u32,
}

/// How long the kernel's answer may take; it comes at once where it comes.
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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
        // The kernel answers with `nonce + 1` (and, since 6.x, a
        // sequence number of its own).
        let nonce = std::process::id();
        for field in [CN_IDX_PROC, CN_VAL_PROC, 0, nonce] {
            message.extend_from_slice(&field.to_ne_bytes());
        }
        message.extend_from_slice(&4u16.to_ne_bytes());
        message.extend_from_slice(&0u16.to_ne_bytes());
        message.extend_from_slice(&op);
        send(socket.as_raw_fd(), &message, MsgFlags::empty())?;
        let mut connector = Connector {
            socket,
            last_seq: Vec::new(),
            lost: 0,
            pending: Vec::new(),
        };
        connector.await_ack(nonce)?;
        Ok(connector)
    }

    /// Waits for the kernel's answer to our subscription. It answers only
    /// a listener in the first pid and user namespace; elsewhere it says
    /// nothing, while the socket still gets the host's events (another
    /// listener keeps them flowing), whose pids mean nothing here.
    fn await_ack(&mut self, nonce: u32) -> std::io::Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let deadline = std::time::Instant::now() + ACK_WAIT;
        let mut buffer = [0u8; 8192];
        loop {
            let mut acks = Vec::new();
            match recv(self.socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
                Ok(n) => {
                    let events = &mut self.pending;
                    self.lost +=
                        parse_messages(&buffer[..n], events, &mut self.last_seq, &mut acks);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(std::io::Error::other(
                            "the kernel did not answer the subscription",
                        ));
                    }
                    let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
                    let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::from(millis)) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                // A burst of other listeners' events before the answer:
                // what was dropped is the caller's first /proc read's.
                Err(nix::errno::Errno::ENOBUFS) => {
                    self.last_seq.clear();
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(ack) = acks.iter().find(|a| a.ack == nonce.wrapping_add(1)) {
                return match ack.err {
                    0 => Ok(()),
                    err => Err(std::io::Error::from_raw_os_error(err as i32)),
                };
            }
        }
    }

    /// Asks the kernel for a receive buffer of `bytes` (it doubles the
    /// figure, and root may pass net.core.rmem_max). A larger buffer rides
    /// out bursts; a tiny one provokes loss on purpose, in tests.
    pub fn set_receive_buffer(&self, bytes: usize) -> std::io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        setsockopt(&self.socket, sockopt::RcvBufForce, &bytes)
            .or_else(|_| setsockopt(&self.socket, sockopt::RcvBuf, &bytes))?;
        Ok(())
    }

    /// How many events are known lost since the socket opened.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.socket
    }

    /// Every event queued now. `Err` with ENOBUFS means the kernel dropped
    /// events because we read too slowly (counted in `lost`); the events
    /// after it are read by the next call.
    pub fn read(&mut self, into: &mut Vec<ProcEvent>) -> std::io::Result<()> {
        into.append(&mut self.pending);
        let mut buffer = [0u8; 8192];
        loop {
            match recv(self.socket.as_raw_fd(), &mut buffer, MsgFlags::empty()) {
                Ok(n) => {
                    let gaps =
                        parse_messages(&buffer[..n], into, &mut self.last_seq, &mut Vec::new());
                    self.lost += gaps;
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    if e == nix::errno::Errno::ENOBUFS {
                        self.lost += 1;
                        // What came before the overflow no longer tells
                        // where the sequences stand.
                        self.last_seq.clear();
                    }
                    return Err(e.into());
                }
            }
        }
    }
}

/// The events in one datagram (which may hold several netlink messages),
/// and how many events the sequence numbers say were lost before them;
/// the kernel's answers to subscriptions go to `acks`.
fn parse_messages(
    mut bytes: &[u8],
    into: &mut Vec<ProcEvent>,
    last_seq: &mut Vec<Option<u32>>,
    acks: &mut Vec<Ack>,
) -> u64 {
    let mut lost = 0;
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    while let Some(length) = u32_at(bytes, 0).map(|l| l as usize) {
        if length < 16 || length > bytes.len() {
            return lost;
        }
        let message = &bytes[..length];
        if let (Some(seq), Some(cpu)) = (u32_at(message, 24), u32_at(message, 40)) {
            let cpu = cpu as usize;
            if cpu < 4096 {
                if last_seq.len() <= cpu {
                    last_seq.resize(cpu + 1, None);
                }
                if let Some(last) = last_seq[cpu] {
                    lost += u64::from(seq.wrapping_sub(last).wrapping_sub(1).min(1 << 20));
                }
                last_seq[cpu] = Some(seq);
            }
        }
        if u32_at(message, 36) == Some(0)
            && let (Some(ack), Some(err)) = (u32_at(message, 28), u32_at(message, DATA_AT))
        {
            acks.push(Ack { ack, err });
        }
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
                let status = u32_at(message, DATA_AT + 8)?;
                // A thread's exit is not its process's.
                (pid == tgid).then_some(ProcEvent::Exit { pid, status })
            }
            _ => None,
        });
        into.extend(event);
        // Messages are aligned to 4 bytes.
        let next = length.div_ceil(4) * 4;
        bytes = bytes.get(next..).unwrap_or(&[]);
    }
    lost
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
        sequenced(what, data, 0, 0)
    }

    /// A message with the sequence number `seq`, sent from `cpu`.
    fn sequenced(what: u32, data: [u32; 4], seq: u32, cpu: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&76u32.to_ne_bytes());
        m.extend_from_slice(&[0u8; 12]);
        m.extend_from_slice(&[0u8; 8]);
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&[0u8; 8]);
        m.extend_from_slice(&what.to_ne_bytes());
        m.extend_from_slice(&cpu.to_ne_bytes());
        m.extend_from_slice(&[0u8; 8]);
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
        bytes.extend(message(0x8000_0000, [11, 11, 9 << 8, 0]));
        bytes.extend_from_slice(&[1, 2, 3]);
        let mut events = Vec::new();
        parse_messages(&bytes, &mut events, &mut Vec::new(), &mut Vec::new());
        assert_eq!(
            events,
            [
                ProcEvent::Fork {
                    parent: 10,
                    child: 11
                },
                ProcEvent::Exec { pid: 11 },
                ProcEvent::Exit {
                    pid: 11,
                    status: 9 << 8
                },
            ]
        );
    }

    #[test]
    fn a_gap_in_a_cpus_sequence_is_counted_as_lost() {
        let mut last = Vec::new();
        let mut events = Vec::new();
        let mut bytes = sequenced(2, [5, 5, 0, 0], 7, 0);
        bytes.extend(sequenced(2, [6, 6, 0, 0], 3, 1));
        bytes.extend(sequenced(2, [7, 7, 0, 0], 8, 0));
        assert_eq!(
            parse_messages(&bytes, &mut events, &mut last, &mut Vec::new()),
            0
        );
        // CPU 0 goes on at 11: 9 and 10 were dropped; CPU 1 at 4 lost none.
        let mut bytes = sequenced(2, [8, 8, 0, 0], 11, 0);
        bytes.extend(sequenced(2, [9, 9, 0, 0], 4, 1));
        assert_eq!(
            parse_messages(&bytes, &mut events, &mut last, &mut Vec::new()),
            2
        );
        assert_eq!(events.len(), 5);
    }

    #[test]
    fn the_kernels_answer_is_read_as_an_ack_not_an_event() {
        let mut answer = sequenced(0, [13, 0, 0, 0], 5, 0);
        answer[28..32].copy_from_slice(&43u32.to_ne_bytes());
        let (mut events, mut acks) = (Vec::new(), Vec::new());
        parse_messages(&answer, &mut events, &mut Vec::new(), &mut acks);
        assert_eq!(events, []);
        assert_eq!(acks, [Ack { ack: 43, err: 13 }]);
    }
}
