//! Who a process belongs to, as the kernel keeps it: its cgroup, and what
//! systemd and the container runtimes mean by the path. A process cannot
//! leave its cgroup without the rights to write the cgroup tree, so unlike
//! its name this tells where it was started: by which unit, in which login
//! session, in which container.

use std::collections::HashMap;
use std::sync::Arc;

use super::ProcDir;
use crate::mounts::Mount;

/// What a cgroup path says, worked out once per path (many processes
/// share one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cgroup {
    /// The path in the systemd (or v2) hierarchy, e.g.
    /// `/system.slice/nginx.service`.
    pub path: String,
    /// The unit of the system manager: `nginx.service`,
    /// `session-4.scope`, `user@1000.service`, `docker-ID.scope`.
    pub unit: Option<String>,
    /// The unit inside a user's manager (`user@UID.service`), e.g.
    /// `app.slice/…/run-r1.service` gives `run-r1.service`.
    pub user_unit: Option<String>,
    /// The slice holding `unit`: `system.slice`, `user-1000.slice`.
    pub slice: Option<String>,
    /// The login session of a `session-ID.scope`.
    pub session: Option<String>,
    /// The uid of the `user@UID.service` manager it runs under.
    pub user_manager: Option<u32>,
    pub container: Option<ContainerId>,
}

/// A container as its cgroup names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    /// `docker`, `podman`, `containerd`, `cri-o`, `kubernetes`, `nspawn`,
    /// `lxc`.
    pub runtime: &'static str,
    /// The runtime's id (a hex string), or the machine's name.
    pub id: String,
}

/// The cgroup path of a process from /proc/PID/cgroup: the v2 line when
/// it says more than `/`, else the v1 `name=systemd` line, else the first
/// controller that says more than `/`.
pub fn path_of(file: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(file).ok()?;
    let mut v2 = None;
    let mut systemd = None;
    let mut other = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        match controllers {
            "" => v2 = Some(path),
            "name=systemd" => systemd = Some(path),
            _ if other.is_none() && path != "/" => other = Some(path),
            _ => {}
        }
    }
    v2.filter(|p| *p != "/").or(systemd).or(other).or(v2)
}

impl Cgroup {
    /// Reads what `path` says.
    pub fn parse(path: &str) -> Cgroup {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut cgroup = Cgroup {
            path: path.to_string(),
            container: container_of(&parts),
            ..Cgroup::default()
        };
        let mut inside_user_manager = false;
        for part in &parts {
            let part = *part;
            if inside_user_manager {
                if is_unit(part) && !part.ends_with(".slice") {
                    cgroup.user_unit = Some(unescape(part));
                }
                continue;
            }
            if part.ends_with(".slice") {
                if cgroup.unit.is_none() {
                    cgroup.slice = Some(unescape(part));
                }
            } else if is_unit(part) && cgroup.unit.is_none() {
                cgroup.unit = Some(unescape(part));
                if let Some(id) = part
                    .strip_prefix("session-")
                    .and_then(|s| s.strip_suffix(".scope"))
                {
                    cgroup.session = Some(id.to_string());
                }
                if let Some(uid) = part
                    .strip_prefix("user@")
                    .and_then(|s| s.strip_suffix(".service"))
                    .and_then(|s| s.parse().ok())
                {
                    cgroup.user_manager = Some(uid);
                    inside_user_manager = true;
                }
            }
        }
        cgroup
    }
}

/// Unit names end in their type.
fn is_unit(part: &str) -> bool {
    const TYPES: [&str; 6] = [".service", ".scope", ".slice", ".socket", ".mount", ".swap"];
    TYPES
        .iter()
        .any(|t| part.len() > t.len() && part.ends_with(t))
}

/// systemd escapes `-` and other bytes in names as `\xNN`.
fn unescape(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(at) = rest.find("\\x") {
        out.push_str(&rest[..at]);
        let hex = rest.get(at + 2..at + 4);
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if byte.is_ascii() => {
                out.push(byte as char);
                rest = &rest[at + 4..];
            }
            _ => {
                out.push_str("\\x");
                rest = &rest[at + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_container_id(text: &str) -> bool {
    text.len() >= 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container a cgroup path belongs to, by the names each runtime
/// gives its cgroups (systemd and cgroupfs drivers alike).
fn container_of(parts: &[&str]) -> Option<ContainerId> {
    let scoped = |part: &str, prefix: &str| {
        part.strip_prefix(prefix)?
            .strip_suffix(".scope")
            .filter(|id| is_container_id(id))
            .map(str::to_string)
    };
    for (i, part) in parts.iter().enumerate() {
        let next = parts.get(i + 1).copied();
        let found = if let Some(id) = scoped(part, "docker-") {
            Some(("docker", id))
        } else if let Some(id) = scoped(part, "libpod-") {
            Some(("podman", id))
        } else if let Some(id) = scoped(part, "cri-containerd-") {
            Some(("containerd", id))
        } else if let Some(id) = scoped(part, "crio-") {
            Some(("cri-o", id))
        } else if let Some(name) = part
            .strip_prefix("machine-")
            .and_then(|m| m.strip_suffix(".scope"))
        {
            Some(("nspawn", unescape(name)))
        } else if *part == "docker" && next.is_some_and(is_container_id) {
            Some(("docker", next?.to_string()))
        } else if (*part == "libpod_parent" || part.starts_with("libpod-"))
            && next.is_some_and(|n| is_container_id(n.trim_start_matches("libpod-")))
        {
            Some(("podman", next?.trim_start_matches("libpod-").to_string()))
        } else if (*part == "lxc" || *part == "lxc.payload") && next.is_some() {
            Some(("lxc", next?.to_string()))
        } else {
            part.strip_prefix("lxc.payload.")
                .map(|name| ("lxc", name.to_string()))
        };
        if let Some((runtime, id)) = found {
            return Some(ContainerId { runtime, id });
        }
    }
    // Kubernetes with the cgroupfs driver: /kubepods/CLASS/podUID/ID.
    if parts.first().is_some_and(|p| p.starts_with("kubepods"))
        && let Some(last) = parts.last().filter(|l| is_container_id(l))
    {
        return Some(ContainerId {
            runtime: "kubernetes",
            id: last.to_string(),
        });
    }
    None
}

/// The hierarchies whose folders tell every process's cgroup: v1's
/// `name=systemd` and the unified (v2) one, where mounted. Reading them
/// costs one `cgroup.procs` per cgroup (a few hundred on a server) instead
/// of one /proc/PID/cgroup per process (thousands).
pub struct Hierarchies {
    systemd: Option<Mount>,
    v2: Option<Mount>,
}

/// The processes of every cgroup of one hierarchy: the cgroup named by its
/// path as /proc/PID/cgroup writes it, and its pids.
pub type Members = Vec<(String, Vec<u32>)>;

impl Hierarchies {
    /// `None` when neither is mounted here.
    pub fn mounted() -> Option<Hierarchies> {
        let mounts = crate::mounts::mounts();
        let v2 = mounts.iter().rev().find(|m| m.fstype == "cgroup2").cloned();
        let systemd = mounts
            .iter()
            .rev()
            .find(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == "name=systemd"))
            .cloned();
        (v2.is_some() || systemd.is_some()).then_some(Hierarchies { systemd, v2 })
    }

    /// Reads the v1 `name=systemd` hierarchy, at most `budget` cgroups of
    /// it; empty where it is not mounted.
    pub fn read_systemd(&self, budget: usize) -> Members {
        self.systemd
            .as_ref()
            .map(|m| members(m, budget))
            .unwrap_or_default()
    }

    /// Reads the v2 hierarchy, at most `budget` cgroups of it; empty where
    /// it is not mounted.
    pub fn read_v2(&self, budget: usize) -> Members {
        self.v2
            .as_ref()
            .map(|m| members(m, budget))
            .unwrap_or_default()
    }
}

/// How many cgroups a walk reads for `processes` processes: a server has
/// fewer cgroups than processes, and a user can make thousands of empty
/// ones in a second (their delegated subtree). Past this, the processes
/// the walk did not reach are read from /proc/PID/cgroup, so the cost
/// follows the processes, not the cgroups.
pub fn walk_budget(processes: usize) -> usize {
    2 * processes + 256
}

/// Every process's cgroup from both hierarchies' members, combined as
/// `path_of` does: v2 wherever it says more than `/`. A process missing
/// (one that started after the walk) is to be read from /proc.
pub fn by_pid(systemd: Members, v2: Members, cgroups: &mut Cgroups) -> HashMap<u32, Arc<Cgroup>> {
    let mut found = HashMap::new();
    for (path, pids) in systemd {
        let cgroup = cgroups.get(&path);
        found.extend(pids.into_iter().map(|pid| (pid, cgroup.clone())));
    }
    for (path, pids) in v2 {
        let cgroup = cgroups.get(&path);
        for pid in pids {
            if path != "/" {
                found.insert(pid, cgroup.clone());
            } else {
                found.entry(pid).or_insert_with(|| cgroup.clone());
            }
        }
    }
    found
}

/// Every cgroup under `mount` with its processes (the mount's own root
/// first), up to `budget` cgroups.
fn members(mount: &Mount, budget: usize) -> Members {
    let mut members = Vec::new();
    let mut pending = vec![(
        mount.point.clone(),
        mount.root.trim_end_matches('/').to_string(),
    )];
    let mut buf = Vec::new();
    let mut visited = 0;
    while let Some((dir, path)) = pending.pop() {
        visited += 1;
        if visited > budget {
            break;
        }
        if let Ok(mut file) = std::fs::File::open(dir.join("cgroup.procs")) {
            use std::io::Read;
            buf.clear();
            if file.read_to_end(&mut buf).is_ok() {
                let pids: Vec<u32> = buf
                    .split(|&b| b == b'\n')
                    .filter_map(|l| std::str::from_utf8(l).ok()?.parse().ok())
                    .collect();
                if !pids.is_empty() {
                    let shown = if path.is_empty() {
                        "/".to_string()
                    } else {
                        path.clone()
                    };
                    members.push((shown, pids));
                }
            }
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // Past the budget no more is read, not even the names.
            if visited + pending.len() >= budget {
                break;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                pending.push((entry.path(), format!("{path}/{name}")));
            }
        }
    }
    members
}

/// Interns parsed cgroups: each distinct path is parsed once per snapshot.
#[derive(Default)]
pub struct Cgroups(HashMap<String, Arc<Cgroup>>);

impl Cgroups {
    pub fn get(&mut self, path: &str) -> Arc<Cgroup> {
        if let Some(found) = self.0.get(path) {
            return found.clone();
        }
        let parsed = Arc::new(Cgroup::parse(path));
        self.0.insert(path.to_string(), parsed.clone());
        parsed
    }

    /// The cgroup that /proc/PID/cgroup of `dir`'s process names.
    pub fn read(&mut self, dir: &ProcDir, buf: &mut Vec<u8>) -> Option<Arc<Cgroup>> {
        dir.read("cgroup", buf)
            .and_then(path_of)
            .map(|path| self.get(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1d2c4b5a6978800112233445566778899aabbccddeeff00112233445566778";

    #[test]
    fn the_path_comes_from_v2_else_the_systemd_hierarchy() {
        let hybrid = b"9:name=systemd:/system.slice/cron.service\n4:memory:/x\n0::/system.slice/cron.service\n";
        assert_eq!(path_of(hybrid), Some("/system.slice/cron.service"));
        let v1 = b"9:name=systemd:/system.slice/cron.service\n4:memory:/\n0::/\n";
        assert_eq!(path_of(v1), Some("/system.slice/cron.service"));
        let plain = b"4:memory:/\n3:cpu:/docker/abc\n";
        assert_eq!(path_of(plain), Some("/docker/abc"));
        assert_eq!(path_of(b"0::/\n"), Some("/"));
        assert_eq!(path_of(b""), None);
    }

    #[test]
    fn systemd_units_slices_sessions_and_user_managers() {
        let c = Cgroup::parse("/system.slice/nginx.service");
        assert_eq!(c.unit.as_deref(), Some("nginx.service"));
        assert_eq!(c.slice.as_deref(), Some("system.slice"));
        assert_eq!((c.session, c.user_manager, c.container), (None, None, None));

        let c = Cgroup::parse("/user.slice/user-1000.slice/session-4.scope");
        assert_eq!(c.unit.as_deref(), Some("session-4.scope"));
        assert_eq!(c.slice.as_deref(), Some("user-1000.slice"));
        assert_eq!(c.session.as_deref(), Some("4"));

        let c = Cgroup::parse(
            "/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1b2.service",
        );
        assert_eq!(c.unit.as_deref(), Some("user@1000.service"));
        assert_eq!(c.user_unit.as_deref(), Some("run-r1b2.service"));
        assert_eq!(c.user_manager, Some(1000));
        assert_eq!(c.session, None);

        let c = Cgroup::parse("/system.slice/system-getty.slice/getty@tty1.service");
        assert_eq!(c.unit.as_deref(), Some("getty@tty1.service"));
        assert_eq!(c.slice.as_deref(), Some("system-getty.slice"));

        // nspawn's payload folder is no unit; what is below it is.
        let c = Cgroup::parse("/payload/system.slice/dbus.service");
        assert_eq!(c.unit.as_deref(), Some("dbus.service"));
        assert_eq!(Cgroup::parse("/").unit, None);
        assert_eq!(
            Cgroup::parse("/init.scope").unit.as_deref(),
            Some("init.scope")
        );
    }

    #[test]
    fn containers_of_each_runtime() {
        let runtime = |path: &str| Cgroup::parse(path).container.map(|c| (c.runtime, c.id));
        assert_eq!(
            runtime(&format!("/system.slice/docker-{ID}.scope")),
            Some(("docker", ID.to_string()))
        );
        assert_eq!(
            runtime(&format!("/docker/{ID}")),
            Some(("docker", ID.to_string()))
        );
        assert_eq!(
            runtime(&format!("/machine.slice/libpod-{ID}.scope/container")),
            Some(("podman", ID.to_string()))
        );
        assert_eq!(
            runtime(&format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-{ID}.scope"
            )),
            Some(("containerd", ID.to_string()))
        );
        assert_eq!(
            runtime(&format!("/kubepods/besteffort/pod1234/{ID}")),
            Some(("kubernetes", ID.to_string()))
        );
        assert_eq!(
            runtime("/machine.slice/machine-web\\x2d1.scope/payload"),
            Some(("nspawn", "web-1".to_string()))
        );
        assert_eq!(
            runtime("/lxc.payload.web/init.scope"),
            Some(("lxc", "web".into()))
        );
        assert_eq!(runtime("/lxc/web"), Some(("lxc", "web".into())));
        assert_eq!(runtime("/system.slice/docker.service"), None);
        assert_eq!(runtime("/system.slice/docker-short.scope"), None);
    }
}
