//! The Unix domain socket daprd discovers the component by.
//!
//! daprd scans its sockets folder once, at start-up, and a socket file with no listener
//! behind it can stall that scan. So a stale file is removed before binding, a live one (a
//! second bridge with the same name) is refused, and the file is removed again on exit
//! (when [`SocketFile`] drops).
//!
//! The folder must not be one that another user can swap the socket out of: it must belong
//! to this user (or root) and not be writable by others, unless it has the sticky bit (like
//! `/tmp`), or the operator vouches for it with `--trust-socket-folder` (a pod's `emptyDir`,
//! which kubelet creates world-writable but which only the pod's containers can reach). A
//! folder the bridge creates itself is mode 0755.
//!
//! Trust model: anyone who can connect to the socket can Init an instance (with brokers and
//! credentials of their choosing), publish, subscribe and ack. The socket is meant to be
//! reached only by the daprd next to the bridge; keep the folder private to the pod or host.
//!
//! The socket's mode is set explicitly after binding. daprd often runs as a different user
//! than the component container in the same pod (daprd's image uses uid 65532), and connecting
//! to a Unix socket needs write permission on it; the default 0o666 lets it in. The folder is
//! a pod-local `emptyDir`, so nothing outside the pod can reach the socket anyway.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

use crate::error::{Error, Result};

/// The bound socket's file, removed on drop.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    /// Binds `path` with file mode `mode`, replacing a stale socket file.
    pub fn bind(path: &Path, mode: u32, trust_folder: bool) -> Result<(UnixListener, SocketFile)> {
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(folder)
                .map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
            if !trust_folder {
                check_folder(folder)?;
            }
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::io(
                    format!("{} is in use", path.display()),
                    std::io::Error::new(
                        std::io::ErrorKind::AddrInUse,
                        "another process is listening there (is a second bridge running with the same component name?)",
                    ),
                ));
            }
            tracing::info!(socket = %path.display(), "removing stale socket file");
            std::fs::remove_file(path).map_err(|e| Error::io(format!("removing stale {}", path.display()), e))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| Error::io(format!("binding {}", path.display()), e))?;
        let file = SocketFile { path: path.to_owned() };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("setting mode {mode:o} on {}", path.display()), e))?;
        Ok((listener, file))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Refuses a folder another user owns or could replace the socket in.
fn check_folder(folder: &Path) -> Result<()> {
    let meta = std::fs::metadata(folder).map_err(|e| Error::io(format!("reading {}", folder.display()), e))?;
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(meta.uid());
    let refuse = |why: String| {
        Error::io(
            format!("sockets folder {}", folder.display()),
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{why}; another user could replace the socket. Use a private folder, or pass --trust-socket-folder (KAFKA_BRIDGE_TRUST_SOCKET_FOLDER=true) for a pod-private emptyDir"
                ),
            ),
        )
    };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(refuse(format!("is owned by uid {} (this process is uid {me})", meta.uid())));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !sticky {
        return Err(refuse(format!("is writable by group or others (mode {:o})", meta.mode() & 0o7777)));
    }
    Ok(())
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => tracing::info!(socket = %self.path.display(), "socket removed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(socket = %self.path.display(), error = %e, "could not remove socket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_file_is_replaced_live_socket_refused_and_file_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sockets/c.sock");
        // A stale socket: bound once, listener dropped, file left behind.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let (_listener, file) = SocketFile::bind(&path, 0o660, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);

        let refused = SocketFile::bind(&path, 0o666, false).unwrap_err();
        assert!(refused.to_string().contains("in use"), "{refused}");

        drop(file);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_folder_others_can_write_is_refused_unless_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("shared");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = folder.join("c.sock");
        let refused = SocketFile::bind(&path, 0o666, false).unwrap_err();
        assert!(refused.to_string().contains("writable by group or others"), "{refused}");
        assert!(refused.to_string().contains("--trust-socket-folder"), "{refused}");
        let (_listener, _file) = SocketFile::bind(&path, 0o666, true).unwrap();
        // The sticky bit (as on /tmp) stops others from replacing the file: accepted.
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o1777)).unwrap();
        drop(_file);
        let (_listener, _file) = SocketFile::bind(&path, 0o666, false).unwrap();
    }

    #[tokio::test]
    async fn a_created_folder_is_private_to_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/deeper/c.sock");
        let (_listener, _file) = SocketFile::bind(&path, 0o666, false).unwrap();
        let mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o022, 0, "mode {mode:o}");
    }
}
