//! Where the Raft files live: a directory on disk ([`DirBackend`]) or memory
//! that forgets unsynced writes on a simulated crash ([`MemBackend`]).
//!
//! The storage layer needs only four operations on named files, chosen so that
//! durability is explicit: appends are volatile until [`Backend::sync`];
//! [`Backend::replace`] is atomic and durable when it returns.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::rc::Rc;

use crate::error::StorageError;

/// Named-file operations the Raft storage is written against.
pub trait Backend {
    /// The whole file, or `None` if it does not exist. Files larger than
    /// `bytes_max` are refused before reading.
    fn read(&mut self, name: &str, bytes_max: u64) -> Result<Option<Vec<u8>>, StorageError>;
    /// Appends to the end of the file (creating it); not durable until synced.
    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError>;
    /// Makes every earlier append to `name` durable (fdatasync).
    fn sync(&mut self, name: &str) -> Result<(), StorageError>;
    /// Atomically and durably replaces the whole file: after a crash either the
    /// old or the new contents are there, never a mix.
    fn replace(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError>;
}

/// Files in one directory. `replace` writes `NAME.tmp`, fsyncs it, renames it
/// over `NAME` and fsyncs the directory.
#[derive(Debug)]
pub struct DirBackend {
    dir: PathBuf,
    appenders: BTreeMap<String, File>,
}

fn io_err<'a>(op: &'static str, file: &'a str) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        op,
        file: file.to_owned(),
        source,
    }
}

impl DirBackend {
    /// Uses (and creates if needed) the directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
            op: "create dir",
            file: dir.display().to_string(),
            source,
        })?;
        Ok(Self {
            dir,
            appenders: BTreeMap::new(),
        })
    }

    fn appender(&mut self, name: &str) -> Result<&mut File, StorageError> {
        if !self.appenders.contains_key(name) {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .map_err(io_err("open", name))?;
            self.appenders.insert(name.to_owned(), file);
        }
        self.appenders
            .get_mut(name)
            .ok_or_else(|| io_err("open", name)(io::ErrorKind::NotFound.into()))
    }

    fn sync_dir(&self, name: &str) -> Result<(), StorageError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync dir for", name))
    }
}

impl Backend for DirBackend {
    fn read(&mut self, name: &str, bytes_max: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let path = self.dir.join(name);
        let len = match fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("stat", name)(e)),
        };
        if len > bytes_max {
            return Err(StorageError::TooLarge {
                file: name.to_owned(),
                bytes: len,
                max: bytes_max,
            });
        }
        fs::read(&path).map(Some).map_err(io_err("read", name))
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.appender(name)?
            .write_all(bytes)
            .map_err(io_err("append", name))
    }

    fn sync(&mut self, name: &str) -> Result<(), StorageError> {
        let file = self.appender(name)?;
        file.sync_data().map_err(io_err("fdatasync", name))
    }

    fn replace(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let tmp_name = format!("{name}.tmp");
        let tmp = self.dir.join(&tmp_name);
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp_name))?;
        file.write_all(bytes).map_err(io_err("write", &tmp_name))?;
        file.sync_all().map_err(io_err("fsync", &tmp_name))?;
        drop(file);
        // The cached append handle points at the inode being replaced.
        self.appenders.remove(name);
        fs::rename(&tmp, self.dir.join(name)).map_err(io_err("rename", name))?;
        self.sync_dir(name)
    }
}

#[derive(Debug, Clone, Default)]
struct MemFile {
    bytes: Vec<u8>,
    synced_len: usize,
}

#[derive(Debug, Default)]
struct MemFiles {
    files: BTreeMap<String, MemFile>,
    syncs: u64,
}

/// Files in memory for tests and simulation: [`MemBackend::crash`] drops what
/// was appended but not synced (optionally keeping a torn prefix of it).
///
/// Clones share the same files, so a test keeps one clone, drops the node
/// (the process "dies"), crashes the files and reopens from its clone.
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    inner: Rc<RefCell<MemFiles>>,
}

impl MemBackend {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates power loss: of each file's unsynced tail, only the first
    /// `keep_unsynced_bytes` survive (0 = all of it is lost). A kept prefix may
    /// end inside a record, which is what a torn write looks like.
    pub fn crash(&self, keep_unsynced_bytes: u64) {
        for f in self.inner.borrow_mut().files.values_mut() {
            let unsynced = (f.bytes.len() - f.synced_len) as u64;
            let kept = unsynced.min(keep_unsynced_bytes) as usize;
            f.bytes.truncate(f.synced_len + kept);
            f.synced_len = f.bytes.len();
        }
    }

    /// Number of sync calls so far (tests check that syncs happen).
    pub fn sync_count(&self) -> u64 {
        self.inner.borrow().syncs
    }
}

impl Backend for MemBackend {
    fn read(&mut self, name: &str, bytes_max: u64) -> Result<Option<Vec<u8>>, StorageError> {
        match self.inner.borrow().files.get(name) {
            None => Ok(None),
            Some(f) if f.bytes.len() as u64 > bytes_max => Err(StorageError::TooLarge {
                file: name.to_owned(),
                bytes: f.bytes.len() as u64,
                max: bytes_max,
            }),
            Some(f) => Ok(Some(f.bytes.clone())),
        }
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.inner
            .borrow_mut()
            .files
            .entry(name.to_owned())
            .or_default()
            .bytes
            .extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, name: &str) -> Result<(), StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.syncs += 1;
        let f = inner.files.entry(name.to_owned()).or_default();
        f.synced_len = f.bytes.len();
        Ok(())
    }

    fn replace(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let mut inner = self.inner.borrow_mut();
        inner.syncs += 1;
        inner.files.insert(
            name.to_owned(),
            MemFile {
                bytes: bytes.to_vec(),
                synced_len: bytes.len(),
            },
        );
        Ok(())
    }
}
