//! Ports and banners for `[[check]]`: whether a process the check matches
//! listens where it should (`listen = "tcp:22"`), and whether what answers
//! there says what it should (`banner = "SSH-2.0-OpenSSH_"`). A process
//! count cannot tell a dead sshd listener from a root login; the port
//! can.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::sockets::{Protocol, Socket};

/// Where a listener must be: `tcp:22`, `tcp6:22`, `udp:53`,
/// `tcp:127.0.0.1:25`, `tcp:[::1]:25`.
#[derive(Debug, Clone)]
pub struct Listen {
    pub protocol: Protocol,
    /// `tcp6:`/`udp6:`: only an IPv6 socket will do.
    pub ipv6_only: bool,
    pub address: Option<IpAddr>,
    pub port: u16,
    text: String,
}

impl Listen {
    pub fn parse(text: &str) -> Result<Listen, String> {
        let bad = |why: &str| {
            format!(
                "{text:?} is not a listening place ({why}); write tcp:22, tcp6:22, udp:53, tcp:127.0.0.1:25 or tcp:[::1]:25"
            )
        };
        let (protocol, rest) = text.split_once(':').ok_or_else(|| bad("no protocol"))?;
        let (protocol, ipv6_only) = match protocol {
            "tcp" => (Protocol::Tcp, false),
            "tcp6" => (Protocol::Tcp, true),
            "udp" => (Protocol::Udp, false),
            "udp6" => (Protocol::Udp, true),
            _ => return Err(bad("the protocol is tcp, tcp6, udp or udp6")),
        };
        let (address, port) = match rest.parse::<u16>() {
            Ok(port) => (None, port),
            Err(_) => {
                let at: SocketAddr = rest.parse().map_err(|_| {
                    bad("after the protocol comes a port, or an address and a port")
                })?;
                (Some(at.ip()), at.port())
            }
        };
        if port == 0 {
            return Err(bad("port 0 is no port"));
        }
        if ipv6_only && address.is_some_and(|a| a.is_ipv4()) {
            return Err(bad("an IPv4 address with tcp6 or udp6"));
        }
        Ok(Listen {
            protocol,
            ipv6_only,
            address,
            port,
            text: text.to_string(),
        })
    }

    /// Whether `socket` listens here. A socket bound to the unspecified
    /// address (0.0.0.0 or ::, which may take IPv4 too) listens on every
    /// address.
    pub fn accepts(&self, socket: &Socket) -> bool {
        let local = socket.local;
        socket.protocol == self.protocol
            && socket.is_listening()
            && local.port() == self.port
            && (!self.ipv6_only || local.is_ipv6())
            && self.address.is_none_or(|want| {
                local.ip() == want
                    || local.ip().is_unspecified() && (local.is_ipv6() || want.is_ipv4())
            })
    }

    /// Where a probe connects by default: the address, or loopback.
    fn probe_address(&self) -> SocketAddr {
        let loopback = if self.ipv6_only {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        let ip = match self.address {
            Some(a) if !a.is_unspecified() => a,
            _ => loopback,
        };
        SocketAddr::new(ip, self.port)
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A TCP connection that must answer as expected.
#[derive(Debug, Clone)]
pub struct Probe {
    pub address: SocketAddr,
    pub send: Option<String>,
    /// The answer's first bytes.
    pub banner: Option<String>,
    pub expect: Option<regex::Regex>,
    pub timeout: Duration,
}

/// The most of an answer read.
const ANSWER_CAP: usize = 64 * 1024;

impl Probe {
    /// `address` (an address and port, or an address whose port is the
    /// listen's), else loopback at the listen's port.
    pub fn address(address: Option<&str>, listen: Option<&Listen>) -> Result<SocketAddr, String> {
        let port_from_listen = || {
            listen.map(|l| l.port).ok_or_else(|| {
                "a banner check needs `listen` or an `address` with a port (\"127.0.0.1:22\")"
                    .to_string()
            })
        };
        match address {
            Some(text) => match text.parse::<SocketAddr>() {
                Ok(at) => Ok(at),
                Err(_) => {
                    let ip: IpAddr = text.parse().map_err(|_| {
                        format!("address {text:?} is not an IP address, with or without a port")
                    })?;
                    Ok(SocketAddr::new(ip, port_from_listen()?))
                }
            },
            None => {
                port_from_listen()?;
                Ok(listen.expect("checked above").probe_address())
            }
        }
    }

    /// Connects, sends, reads: Ok with the time it took, or what went
    /// wrong, with what answered.
    pub fn run(&self) -> Result<Duration, String> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let mut stream = TcpStream::connect_timeout(&self.address, self.timeout)
            .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
        let left = || deadline.saturating_duration_since(Instant::now());
        if let Some(send) = &self.send {
            stream
                .set_write_timeout(Some(left().max(Duration::from_millis(1))))
                .and_then(|()| stream.write_all(send.as_bytes()))
                .map_err(|e| format!("{} took no probe: {e}", self.address))?;
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if self.satisfied(&answer) {
                return Ok(started.elapsed());
            }
            let remaining = left();
            if remaining.is_zero() || answer.len() >= ANSWER_CAP {
                break;
            }
            let _ = stream.set_read_timeout(Some(remaining));
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{} broke off: {e}", self.address)),
            }
        }
        if self.satisfied(&answer) {
            return Ok(started.elapsed());
        }
        let wanted = match (&self.banner, &self.expect) {
            (Some(b), _) => format!("not starting with {b:?}"),
            (None, Some(r)) => format!("not matching /{r}/"),
            (None, None) => String::new(),
        };
        if answer.is_empty() {
            return Err(format!(
                "{} answered nothing in {}s",
                self.address,
                self.timeout.as_secs_f64()
            ));
        }
        Err(format!(
            "{} answered {:?} ({wanted})",
            self.address,
            shown(&answer)
        ))
    }

    /// Whether the answer so far is what was wanted (a probe has a
    /// `banner`, an `expect` or both).
    fn satisfied(&self, answer: &[u8]) -> bool {
        let banner = self
            .banner
            .as_ref()
            .is_none_or(|b| answer.starts_with(b.as_bytes()));
        let expect = self
            .expect
            .as_ref()
            .is_none_or(|r| r.is_match(&String::from_utf8_lossy(answer)));
        !answer.is_empty() && banner && expect
    }
}

/// The start of an answer, as one printable line.
fn shown(answer: &[u8]) -> String {
    let first = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    crate::render::printable(first).chars().take(80).collect()
}

/// `5s`, `500ms`, `2`: a timeout.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let bad = || format!("timeout {text:?} is not a time (write 5s or 500ms)");
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        (text, 1.0)
    };
    let seconds: f64 = number.trim().parse().map_err(|_| bad())?;
    if !(seconds > 0.0 && seconds * scale <= 300.0) {
        return Err(format!("timeout {text:?} must be above 0 and at most 300s"));
    }
    Ok(Duration::from_secs_f64(seconds * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(protocol: Protocol, local: &str, status: &'static str) -> Socket {
        Socket {
            protocol,
            local: local.parse().unwrap(),
            remote: "0.0.0.0:0".parse().unwrap(),
            status,
        }
    }

    #[test]
    fn listening_places() {
        let ssh = Listen::parse("tcp:22").unwrap();
        assert!(ssh.accepts(&socket(Protocol::Tcp, "0.0.0.0:22", "LISTEN")));
        assert!(ssh.accepts(&socket(Protocol::Tcp, "[::]:22", "LISTEN")));
        assert!(!ssh.accepts(&socket(Protocol::Tcp, "0.0.0.0:22", "ESTABLISHED")));
        assert!(!ssh.accepts(&socket(Protocol::Udp, "0.0.0.0:22", "NONE")));
        assert!(!ssh.accepts(&socket(Protocol::Tcp, "0.0.0.0:2222", "LISTEN")));
        let v6 = Listen::parse("tcp6:22").unwrap();
        assert!(!v6.accepts(&socket(Protocol::Tcp, "0.0.0.0:22", "LISTEN")));
        let smtp = Listen::parse("tcp:127.0.0.1:25").unwrap();
        assert!(smtp.accepts(&socket(Protocol::Tcp, "127.0.0.1:25", "LISTEN")));
        assert!(smtp.accepts(&socket(Protocol::Tcp, "0.0.0.0:25", "LISTEN")));
        assert!(!smtp.accepts(&socket(Protocol::Tcp, "10.0.0.1:25", "LISTEN")));
        let dns = Listen::parse("udp:53").unwrap();
        assert!(dns.accepts(&socket(Protocol::Udp, "127.0.0.53:53", "NONE")));
        assert_eq!(
            Listen::parse("tcp:[::1]:25").unwrap().address,
            Some("::1".parse().unwrap())
        );
        for bad in [
            "22",
            "sctp:22",
            "tcp:",
            "tcp:0",
            "tcp:x",
            "tcp6:127.0.0.1:25",
            "tcp:1.2.3.4",
        ] {
            assert!(Listen::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
        for bad in ["0", "-1s", "x", "301s"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_probe_reads_the_banner_and_says_what_answered() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for greeting in ["SSH-2.0-OpenSSH_9.2p1 Debian\r\n", "SSH-2.0-dropbear\r\n"] {
                let (mut c, _) = listener.accept().unwrap();
                c.write_all(greeting.as_bytes()).unwrap();
            }
            let (mut c, _) = listener.accept().unwrap();
            let mut request = [0u8; 18];
            c.read_exact(&mut request).unwrap();
            c.write_all(b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n")
                .unwrap();
        });
        let probe = |banner: Option<&str>, send: Option<&str>, expect: Option<&str>| Probe {
            address,
            send: send.map(String::from),
            banner: banner.map(String::from),
            expect: expect.map(|e| regex::Regex::new(e).unwrap()),
            timeout: Duration::from_secs(5),
        };
        assert!(probe(Some("SSH-2.0-OpenSSH_"), None, None).run().is_ok());
        let e = probe(Some("SSH-2.0-OpenSSH_"), None, None)
            .run()
            .unwrap_err();
        assert!(
            e.contains("answered \"SSH-2.0-dropbear\"") && e.contains("not starting with"),
            "{e}"
        );
        let ok = probe(
            None,
            Some("HEAD / HTTP/1.0\r\n\r\n"),
            Some("^HTTP/1\\.[01] 200"),
        )
        .run();
        assert!(ok.is_ok(), "{ok:?}");
        server.join().unwrap();
        let e = probe(Some("x"), None, None).run().unwrap_err();
        assert!(e.contains("cannot connect"), "{e}");
    }
}
