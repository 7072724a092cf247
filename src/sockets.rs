//! Internet sockets and the processes that hold them: the socket tables
//! of each network namespace (/proc/PID/net/{tcp,tcp6,udp,udp6}, read once
//! per namespace), joined to a process through its `socket:[INODE]`
//! descriptors. Used by the API's `connections` and by `listen` checks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use procfs::FromBufReadSI;

use crate::snapshot::ProcDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

/// One socket of a table.
#[derive(Debug, Clone)]
pub struct Socket {
    pub protocol: Protocol,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// psutil's name of its TCP state (`LISTEN`, `ESTABLISHED`, ...);
    /// `NONE` for UDP.
    pub status: &'static str,
}

impl Socket {
    /// A TCP socket accepting connections, or a UDP socket bound with no
    /// peer: what `ss -l` lists.
    pub fn is_listening(&self) -> bool {
        match self.protocol {
            Protocol::Tcp => self.status == "LISTEN",
            Protocol::Udp => self.remote.port() == 0 && self.remote.ip().is_unspecified(),
        }
    }
}

/// Sockets by inode, per network namespace.
#[derive(Default)]
pub struct SocketTables {
    by_namespace: HashMap<PathBuf, HashMap<u64, Socket>>,
}

impl SocketTables {
    /// The table of the namespace `dir`'s process is in.
    pub fn of(&mut self, dir: &ProcDir) -> &HashMap<u64, Socket> {
        let namespace = dir.read_link("ns/net").unwrap_or_default();
        self.by_namespace
            .entry(namespace)
            .or_insert_with(|| read(dir))
    }

    /// The TCP connections `dir`'s process holds that it accepted (their
    /// local port is one a socket of its namespace listens on), as a
    /// server's session does; not the ones it opened itself.
    pub fn accepted_by(&mut self, dir: &ProcDir) -> Vec<Socket> {
        let held = self.held_by(dir);
        let table = self.of(dir);
        let listens = |at: &SocketAddr| {
            table.values().any(|s| {
                s.protocol == Protocol::Tcp
                    && s.is_listening()
                    && s.local.port() == at.port()
                    && (s.local.ip() == at.ip() || s.local.ip().is_unspecified())
            })
        };
        held.into_iter()
            .map(|(_, s)| s)
            .filter(|s| s.protocol == Protocol::Tcp && !s.is_listening() && listens(&s.local))
            .collect()
    }

    /// The sockets a process holds, with their descriptors.
    pub fn held_by(&mut self, dir: &ProcDir) -> Vec<(i32, Socket)> {
        let descriptors = dir.descriptors();
        if !descriptors.iter().any(|(_, t)| inode(t).is_some()) {
            return Vec::new();
        }
        let table = self.of(dir);
        descriptors
            .iter()
            .filter_map(|(fd, target)| Some((*fd, table.get(&inode(target)?)?.clone())))
            .collect()
    }
}

/// The inode of a `socket:[INODE]` link target.
pub fn inode(target: &Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn read(dir: &ProcDir) -> HashMap<u64, Socket> {
    let mut table = HashMap::new();
    let system = procfs::current_system_info();
    for file in ["net/tcp", "net/tcp6"] {
        let entries = dir
            .read_vec(file)
            .and_then(|b| procfs::net::TcpNetEntries::from_buf_read(&b[..], system).ok());
        for e in entries.map(|e| e.0).unwrap_or_default() {
            table.insert(
                e.inode,
                Socket {
                    protocol: Protocol::Tcp,
                    local: e.local_address,
                    remote: e.remote_address,
                    status: tcp_status(&e.state),
                },
            );
        }
    }
    for file in ["net/udp", "net/udp6"] {
        let entries = dir
            .read_vec(file)
            .and_then(|b| procfs::net::UdpNetEntries::from_buf_read(&b[..], system).ok());
        for e in entries.map(|e| e.0).unwrap_or_default() {
            table.insert(
                e.inode,
                Socket {
                    protocol: Protocol::Udp,
                    local: e.local_address,
                    remote: e.remote_address,
                    status: "NONE",
                },
            );
        }
    }
    table
}

/// psutil's names of TCP states.
fn tcp_status(state: &procfs::net::TcpState) -> &'static str {
    use procfs::net::TcpState::*;
    match state {
        Established => "ESTABLISHED",
        SynSent => "SYN_SENT",
        SynRecv | NewSynRecv => "SYN_RECV",
        FinWait1 => "FIN_WAIT1",
        FinWait2 => "FIN_WAIT2",
        TimeWait => "TIME_WAIT",
        Close => "CLOSE",
        CloseWait => "CLOSE_WAIT",
        LastAck => "LAST_ACK",
        Listen => "LISTEN",
        Closing => "CLOSING",
    }
}
