//! The exchange directory, behind a small async trait so the transport can change: today a
//! local (or mounted) directory, [`LocalDir`]; an SFTP exchange is another implementation of
//! [`Exchange`] (not written yet) and nothing else changes.
//!
//! Paths are relative to the exchange root, `/`-separated (`inbox/COMANDA_123.txt`); `..`,
//! absolute paths and empty segments are refused.
//!
//! What every implementation must guarantee (the recovery rules rely on it):
//! - **Atomic writes**: a reader sees a file whole or not at all. Both writes go through a
//!   temporary file in the same directory named `.<name>.<random>.tmp` (the other side ignores
//!   names starting with `.`), then a rename or link.
//! - [`Exchange::write_new`] never replaces an existing file (`Ok(false)` when one is there):
//!   locally by `hard_link` (atomic and exclusive); over SFTP by a plain SFTP v3 `rename`,
//!   which fails when the target exists.
//! - An error from a write means the target was **not** written, except
//!   [`std::io::ErrorKind::TimedOut`], which means "unknown" (a remote rename whose answer was
//!   lost). The client treats the latter as in doubt and lets the lookup decide.
//! - The root is never created: a missing root (an unmounted share) is an error, not an empty
//!   directory on the worker's disk. Sub-directories are created on first write.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;

/// The operations the connector (and the fake) need from the exchange directory.
#[async_trait]
pub trait Exchange: Send + Sync + Debug {
    /// A human-readable location, for messages (`/srv/winmentor`, later `sftp://host/dir`).
    fn location(&self) -> String;
    /// File names (not paths) directly in `dir`; an absent directory is empty.
    async fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    /// The file's bytes, `None` when it does not exist.
    async fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    /// Whether the file exists.
    async fn exists(&self, path: &str) -> io::Result<bool>;
    /// When the file was last modified, `None` when it does not exist.
    async fn modified(&self, path: &str) -> io::Result<Option<SystemTime>>;
    /// Writes atomically, replacing any existing file.
    async fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Writes atomically only if no file is there: `Ok(true)` written, `Ok(false)` one exists.
    async fn write_new(&self, path: &str, bytes: &[u8]) -> io::Result<bool>;
    /// Removes the file: `Ok(false)` when it was not there.
    async fn remove(&self, path: &str) -> io::Result<bool>;
    /// Moves a file (replacing the target), e.g. into `archive/`.
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
}

/// A local or mounted directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of a relative exchange path, refusing escapes.
    pub fn resolve(&self, rel: &str) -> io::Result<PathBuf> {
        let mut p = self.root.clone();
        if rel.is_empty() || rel.starts_with('/') || rel.contains('\\') {
            return Err(invalid(rel));
        }
        for seg in rel.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." || seg.contains(':') {
                return Err(invalid(rel));
            }
            p.push(seg);
        }
        Ok(p)
    }

    fn check_root(&self) -> io::Result<()> {
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("exchange root {} is not a directory", self.root.display()),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "exchange root {} does not exist (is the share mounted?)",
                    self.root.display()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    /// Blocking: writes `bytes` to a temporary sibling of `target`, flushed to disk.
    fn write_temp(target: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
        use std::io::Write as _;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = target.with_file_name(format!(
            ".{name}.{}.tmp",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Blocking versions, shared by the async trait and the fake's synchronous side.
    pub fn write_atomic_blocking(&self, rel: &str, bytes: &[u8]) -> io::Result<()> {
        self.check_root()?;
        let target = self.resolve(rel)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = Self::write_temp(&target, bytes)?;
        std::fs::rename(&tmp, &target).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    pub fn write_new_blocking(&self, rel: &str, bytes: &[u8]) -> io::Result<bool> {
        self.check_root()?;
        let target = self.resolve(rel)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if target.exists() {
            return Ok(false);
        }
        let tmp = Self::write_temp(&target, bytes)?;
        let linked = match std::fs::hard_link(&tmp, &target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            // File systems without hard links: re-check, then rename (a narrow race with
            // another writer of the same name remains; documented).
            Err(_) if !target.exists() => std::fs::rename(&tmp, &target).map(|()| true),
            Err(_) => Ok(false),
        };
        let _ = std::fs::remove_file(&tmp);
        linked
    }

    pub fn read_blocking(&self, rel: &str) -> io::Result<Option<Vec<u8>>> {
        self.check_root()?;
        match std::fs::read(self.resolve(rel)?) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn list_blocking(&self, dir: &str) -> io::Result<Vec<String>> {
        self.check_root()?;
        let rd = match std::fs::read_dir(self.resolve(dir)?) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn remove_blocking(&self, rel: &str) -> io::Result<bool> {
        self.check_root()?;
        match std::fs::remove_file(self.resolve(rel)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn rename_blocking(&self, from: &str, to: &str) -> io::Result<()> {
        self.check_root()?;
        let (from, to) = (self.resolve(from)?, self.resolve(to)?);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(from, to)
    }

    pub fn modified_blocking(&self, rel: &str) -> io::Result<Option<SystemTime>> {
        self.check_root()?;
        match std::fs::metadata(self.resolve(rel)?) {
            Ok(m) => m.modified().map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalDir) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(me))
            .await
            .map_err(|e| io::Error::other(format!("file task failed: {e}")))?
    }
}

fn invalid(rel: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{rel:?} is not a relative exchange path"),
    )
}

#[async_trait]
impl Exchange for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let dir = dir.to_owned();
        self.blocking(move |d| d.list_blocking(&dir)).await
    }

    async fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let path = path.to_owned();
        self.blocking(move |d| d.read_blocking(&path)).await
    }

    async fn exists(&self, path: &str) -> io::Result<bool> {
        let path = path.to_owned();
        self.blocking(move |d| {
            d.check_root()?;
            Ok(d.resolve(&path)?.is_file())
        })
        .await
    }

    async fn modified(&self, path: &str) -> io::Result<Option<SystemTime>> {
        let path = path.to_owned();
        self.blocking(move |d| d.modified_blocking(&path)).await
    }

    async fn write_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let (path, bytes) = (path.to_owned(), bytes.to_vec());
        self.blocking(move |d| d.write_atomic_blocking(&path, &bytes))
            .await
    }

    async fn write_new(&self, path: &str, bytes: &[u8]) -> io::Result<bool> {
        let (path, bytes) = (path.to_owned(), bytes.to_vec());
        self.blocking(move |d| d.write_new_blocking(&path, &bytes))
            .await
    }

    async fn remove(&self, path: &str) -> io::Result<bool> {
        let path = path.to_owned();
        self.blocking(move |d| d.remove_blocking(&path)).await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.blocking(move |d| d.rename_blocking(&from, &to)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root() -> PathBuf {
        let p = std::env::temp_dir().join(format!("wm-exchange-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[tokio::test]
    async fn writes_are_atomic_exclusive_and_leave_no_temp_files() {
        let root = temp_root();
        let x = LocalDir::new(&root);
        assert_eq!(x.list("inbox").await.unwrap(), Vec::<String>::new());
        assert!(x.write_new("inbox/A.txt", b"one").await.unwrap());
        assert!(!x.write_new("inbox/A.txt", b"two").await.unwrap());
        assert_eq!(x.read("inbox/A.txt").await.unwrap().unwrap(), b"one");
        x.write_atomic("inbox/A.txt", b"three").await.unwrap();
        assert_eq!(x.read("inbox/A.txt").await.unwrap().unwrap(), b"three");
        assert_eq!(x.list("inbox").await.unwrap(), vec!["A.txt".to_owned()]);
        assert!(x.modified("inbox/A.txt").await.unwrap().is_some());
        x.rename("inbox/A.txt", "archive/A.txt").await.unwrap();
        assert!(!x.exists("inbox/A.txt").await.unwrap());
        assert!(x.exists("archive/A.txt").await.unwrap());
        assert!(x.remove("archive/A.txt").await.unwrap());
        assert!(!x.remove("archive/A.txt").await.unwrap());
        assert_eq!(x.read("archive/A.txt").await.unwrap(), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn escapes_and_missing_roots_are_refused() {
        let root = temp_root();
        let x = LocalDir::new(&root);
        for bad in ["../x", "/etc/passwd", "inbox//a", "a/./b", "", "c:\\x"] {
            let e = x.read(bad).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
        std::fs::remove_dir_all(&root).unwrap();
        let e = x.write_atomic("inbox/A.txt", b"x").await.unwrap_err();
        assert!(e.to_string().contains("mounted"), "{e}");
        assert!(!root.exists(), "the root is never created");
    }
}
