//! What psdiff's two eBPF programs (`files`' and `watch`'s) share: whether
//! this machine can run one, and why not, so `--backend auto` can fall
//! back and say so.

use std::path::Path;

use aya::maps::{MapData, PerCpuArray};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf};

/// Why an eBPF backend cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("this kernel has no BTF (/sys/kernel/btf/vmlinux), which the eBPF backend needs")]
    NoBtf,
    #[error("the eBPF backend is built for x86_64 only")]
    Architecture,
    #[error("the eBPF backend needs root, or CAP_BPF and CAP_PERFMON")]
    NoCapability,
    #[error(
        "the kernel is locked down ({0}), which forbids eBPF tracing; choose the other --backend"
    )]
    LockedDown(String),
    #[error("the kernel refused the eBPF program: {0}")]
    Load(String),
}

impl EbpfError {
    /// The kernel's refusal, with every cause, as one line.
    pub fn load(error: &dyn std::error::Error) -> EbpfError {
        EbpfError::Load(chain(error))
    }
}

/// Whether this machine can run an eBPF backend: architecture, BTF,
/// capabilities, lockdown. The kernel may still refuse at load.
pub fn available() -> Result<(), EbpfError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(EbpfError::Architecture);
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(EbpfError::NoBtf);
    }
    if !capable() {
        return Err(EbpfError::NoCapability);
    }
    // `integrity` forbids only writing to user memory; `confidentiality`
    // forbids reading the kernel's, which tracing needs.
    if let Ok(mode) = std::fs::read_to_string("/sys/kernel/security/lockdown")
        && mode.contains("[confidentiality]")
    {
        return Err(EbpfError::LockedDown("confidentiality".into()));
    }
    Ok(())
}

/// Loads the programs `tracepoints` of `ebpf`, each named after the BTF
/// raw tracepoint it is for; `attach` attaches them.
pub fn load_tracepoints(ebpf: &mut Ebpf, tracepoints: &[&str]) -> Result<(), EbpfError> {
    let btf = Btf::from_sys_fs().map_err(|e| EbpfError::load(&e))?;
    for &tracepoint in tracepoints {
        program(ebpf, tracepoint)?
            .load(tracepoint, &btf)
            .map_err(|e| EbpfError::Load(format!("{tracepoint}: {}", chain(&e))))?;
    }
    Ok(())
}

/// Attaches the loaded programs `tracepoints`, in that order.
pub fn attach(ebpf: &mut Ebpf, tracepoints: &[&str]) -> Result<(), EbpfError> {
    for &tracepoint in tracepoints {
        program(ebpf, tracepoint)?
            .attach()
            .map_err(|e| EbpfError::Load(format!("{tracepoint}: {}", chain(&e))))?;
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut BtfTracePoint, EbpfError> {
    ebpf.program_mut(name)
        .expect("in the object")
        .try_into()
        .map_err(|e| EbpfError::load(&e))
}

/// A per-CPU counter (events that found a ring buffer full), summed.
pub fn total(counter: &PerCpuArray<MapData, u64>) -> u64 {
    counter
        .get(&0, 0)
        .map(|per_cpu| per_cpu.iter().sum())
        .unwrap_or(0)
}

/// root, or CAP_BPF (39) and CAP_PERFMON (38) in effect.
fn capable() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let needed = (1 << 39) | (1 << 38);
    const CAP_SYS_ADMIN: u64 = 1 << 21;
    effective & needed == needed || effective & CAP_SYS_ADMIN != 0
}

/// An error with its causes, as one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
