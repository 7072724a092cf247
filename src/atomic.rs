//! Files psdiff writes as root: replaced whole (a reader sees the old file
//! or the new one, never half of either), through a temporary file whose
//! name nobody can guess and which is created exclusively, so a link
//! planted in a folder others can write (Debian's /var/lib/prometheus
//! belongs to prometheus) is never followed; and with its mode set on the
//! open file, whatever the umask.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames
/// it over `path`. The file keeps the mode of the regular file it
/// replaces, else gets `mode`. On failure the temporary file is removed and
/// `path` is as it was.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mode = mode_of(path).unwrap_or(mode);
    let (mut file, tmp) = temp_file(path, "tmp", mode)?;
    let written = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The permission bits of `path`, when it is a regular file (not through
/// a link).
pub fn mode_of(path: &Path) -> Option<u32> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_file()
        .then(|| meta.permissions().mode() & 0o7777)
}

/// A new file beside `path`, named `.NAME.KIND.RANDOM`, created
/// exclusively (an existing file or link of that name is an error, never
/// followed) with exactly `mode`.
pub fn temp_file(path: &Path, kind: &str, mode: u32) -> std::io::Result<(File, PathBuf)> {
    let tmp = temp_name(path, kind)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(&tmp)?;
    // Set on the open file: the umask has no say, and no path is followed.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok((file, tmp))
}

/// A name beside `path` that nobody can guess: `.NAME.KIND.RANDOM`. Make
/// it only with calls that fail when it exists (`create_new`, `link`).
pub fn temp_name(path: &Path, kind: &str) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(path.with_file_name(format!(".{name}.{kind}.{}", random_suffix()?)))
}

/// Whether `file_name` is a temporary file `temp_file` made for `name`
/// and `kind`, or one of the `.NAME.KIND.PID` files that earlier builds made.
pub fn is_temp_of(file_name: &str, name: &str, kind: &str) -> bool {
    file_name
        .strip_prefix(&format!(".{name}.{kind}."))
        .is_some_and(|s| {
            let random = s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
            let legacy = !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
            random || legacy
        })
}

/// 64 random bits, in hex.
fn random_suffix() -> std::io::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Makes the folders of `dir` that are missing with `mode` (not the
/// umask's), as `mkdir -p -m MODE` does for the last one.
pub fn create_dirs(dir: &Path, mode: u32) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, 0o755)?;
    }
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_kept_or_set_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("f");
        use nix::sys::stat::{Mode, umask};
        let old = umask(Mode::from_bits_truncate(0o077));
        write(&path, b"a", 0o644).unwrap();
        assert_eq!(mode_of(&path), Some(0o644));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write(&path, b"b", 0o644).unwrap();
        assert_eq!(mode_of(&path), Some(0o640), "kept from the file replaced");
        umask(old);
        assert_eq!(std::fs::read(&path).unwrap(), b"b");
        let temps: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert_eq!(temps.len(), 1, "no temporary file is left");
    }

    #[test]
    fn a_planted_link_is_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (_, tmp) = temp_file(&dir.join("x"), "tmp", 0o644).unwrap();
        let name = tmp.file_name().unwrap().to_str().unwrap().to_string();
        assert!(is_temp_of(&name, "x", "tmp"), "{name}");
        std::fs::remove_file(&tmp).unwrap();
        // A link at the very name: creating it fails, nothing is written
        // through it.
        let victim = dir.join("victim");
        std::fs::write(&victim, "safe").unwrap();
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp);
        assert!(created.is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "safe");
    }
}
