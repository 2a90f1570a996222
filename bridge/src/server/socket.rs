//! The Unix domain socket daprd discovers the component by.
//!
//! daprd scans its sockets folder once, at start-up, and a socket file with no listener
//! behind it can stall that scan. So a stale file is removed before binding, a live one (a
//! second bridge with the same name) is refused, and the file is removed again on exit
//! (when [`SocketFile`] drops).
//!
//! The socket's mode is set explicitly after binding. daprd often runs as a different user
//! than the component container in the same pod (daprd's image uses uid 65532), and connecting
//! to a Unix socket needs write permission on it; the default 0o666 lets it in. The folder is
//! a pod-local `emptyDir`, so nothing outside the pod can reach the socket anyway.

use std::os::unix::fs::PermissionsExt;
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
    pub fn bind(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile)> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| Error::io(format!("creating {}", folder.display()), e))?;
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

        let (_listener, file) = SocketFile::bind(&path, 0o660).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);

        let refused = SocketFile::bind(&path, 0o666).unwrap_err();
        assert!(refused.to_string().contains("in use"), "{refused}");

        drop(file);
        assert!(!path.exists());
    }
}
