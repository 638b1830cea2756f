//! On-disk cache of compiled components, so a restart serves in milliseconds.
//!
//! Compiling the application's components with Cranelift takes seconds at
//! every start. The machine code only depends on the component's bytes and
//! on the engine's configuration, so it is stored once and loaded back:
//!
//! - an entry is named by SHA-256 over the engine's
//!   [`Engine::precompile_compatibility_hash`] and the component's bytes:
//!   a rebuilt component or another wasmtime version or configuration gets
//!   a new entry, never a stale one;
//! - `<key>.cwasm` holds [`Component::serialize`]'s output and `<key>.sha256`
//!   its digest; both are written to a temporary file in the same directory,
//!   synced, and renamed into place, so a reader sees a whole file or none;
//! - a hit is checked against its digest and loaded with
//!   [`Component::deserialize_file`] (mapped, not copied); an entry that is
//!   missing its digest, does not match it, or that wasmtime refuses is
//!   compiled again and replaced;
//! - the directory keeps the [`MAX_ENTRIES`] most recently used entries.
//!
//! Loading machine code from a file is only as safe as the file, so the
//! cache refuses a directory that another user owns or others can write.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Entries kept: enough for several applications and rebuilds.
pub const MAX_ENTRIES: usize = 64;
/// Changes when the layout of an entry changes.
const FORMAT: &[u8] = b"crowdgate-compile-cache-v1\0";

/// Why the cache cannot be used or written; the host then compiles as if
/// there were no cache (a warning is logged), it never fails a load.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The directory cannot be created or inspected.
    #[error("cannot use {}: {source}", path.display())]
    Dir {
        /// The cache directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory is not private to this user.
    #[error(
        "{} is owned by uid {owner} or writable by others (mode {mode:o}); it must be private to uid {uid}",
        path.display()
    )]
    NotPrivate {
        /// The cache directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// The compiled component cannot be serialized.
    #[error("cannot serialize the compiled component: {0}")]
    Serialize(String),
    /// An entry cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a lookup found.
pub enum Lookup {
    /// A valid entry.
    Hit(Component),
    /// No entry.
    Miss,
    /// An entry that cannot be used, and why; it must be replaced.
    Invalid(String),
}

/// A cache directory bound to one engine.
pub struct CompileCache {
    dir: PathBuf,
    /// Digest of the engine's compatibility hash and [`FORMAT`].
    engine_key: [u8; 32],
}

impl CompileCache {
    /// Opens (creating it, mode 0700) the cache in `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<CompileCache, CacheError> {
        let dir_err = |source| CacheError::Dir {
            path: dir.to_path_buf(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_err)?;
        let meta = fs::metadata(dir).map_err(dir_err)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let mode = meta.permissions().mode() & 0o7777;
        if meta.uid() != uid || mode & 0o022 != 0 {
            return Err(CacheError::NotPrivate {
                path: dir.to_path_buf(),
                owner: meta.uid(),
                mode,
                uid,
            });
        }
        let mut hasher = DigestHasher(Sha256::new());
        hasher.0.update(FORMAT);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(CompileCache {
            dir: dir.to_path_buf(),
            engine_key: hasher.0.finalize().into(),
        })
    }

    /// The key of the component whose `.wasm` bytes are `wasm`.
    pub fn key(&self, wasm: &[u8]) -> String {
        let mut digest = Sha256::new();
        digest.update(self.engine_key);
        digest.update(wasm);
        hex(&digest.finalize())
    }

    /// Looks up `key`, checking the entry against its digest.
    pub fn load(&self, engine: &Engine, key: &str) -> Lookup {
        let (artifact, digest_file) = self.paths(key);
        let bytes = match fs::read(&artifact) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return Lookup::Invalid(format!("cannot read: {e}")),
        };
        let expected = match fs::read_to_string(&digest_file) {
            Ok(text) => text,
            Err(e) => return Lookup::Invalid(format!("no digest: {e}")),
        };
        if hex(&Sha256::digest(&bytes)) != expected.trim() {
            return Lookup::Invalid("contents do not match their digest".into());
        }
        drop(bytes);
        // SAFETY: `deserialize_file` maps the file and runs the machine code
        // in it, so the file must be a genuine `Component::serialize` output
        // for this engine, and must not change while mapped. Both hold:
        // - only this cache writes the directory, and it is private to our
        //   uid (checked in `open`); the contents were just checked against
        //   the digest written with them, which catches truncation and
        //   corruption;
        // - entries are replaced by renaming a new file over the name,
        //   never modified in place, so a mapping keeps the old file's
        //   contents; an entry for a key is always the same component
        //   compiled by the same engine configuration (the key covers both);
        // - wasmtime itself refuses a file for another engine or version.
        // A file that fails anyway is reported invalid and recompiled.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(component) => {
                // Mark it recently used, for pruning; failure only ages it.
                let _ = File::options()
                    .write(true)
                    .open(&artifact)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Lookup::Hit(component)
            }
            Err(e) => Lookup::Invalid(format!("wasmtime refused it: {e:#}")),
        }
    }

    /// Stores `component` under `key`, then prunes old entries.
    pub fn store(&self, key: &str, component: &Component) -> Result<(), CacheError> {
        let bytes = component
            .serialize()
            .map_err(|e| CacheError::Serialize(format!("{e:#}")))?;
        let (artifact, digest_file) = self.paths(key);
        // The artifact first: a reader that finds the new digest with the
        // old artifact (or no digest) only recompiles.
        self.write_atomically(&artifact, &bytes)?;
        self.write_atomically(&digest_file, hex(&Sha256::digest(&bytes)).as_bytes())?;
        self.prune(&artifact);
        Ok(())
    }

    fn paths(&self, key: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{key}.cwasm")),
            self.dir.join(format!("{key}.sha256")),
        )
    }

    /// Writes `bytes` to a temporary file next to `path`, syncs it and
    /// renames it to `path`.
    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = self
            .dir
            .join(format!(".{file_name}.{}.{nanos}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = File::options().write(true).create_new(true).open(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&tmp);
            CacheError::Write {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// Removes the least recently used entries beyond [`MAX_ENTRIES`], and
    /// temporary files left by a crash. Never `keep`. Best effort: a file
    /// another host has mapped stays valid for it after removal.
    fn prune(&self, keep: &Path) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries = Vec::new();
        for entry in dir.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let modified = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(".tmp") {
                let old = modified.elapsed().is_ok_and(|age| age.as_secs() > 3600);
                if old {
                    let _ = fs::remove_file(&path);
                }
            } else if name.ends_with(".cwasm") && path != keep {
                entries.push((modified, path));
            }
        }
        if entries.len() < MAX_ENTRIES {
            return;
        }
        entries.sort();
        let excess = entries.len() + 1 - MAX_ENTRIES;
        for (_, path) in entries.into_iter().take(excess) {
            let _ = fs::remove_file(path.with_extension("sha256"));
            let _ = fs::remove_file(&path);
        }
    }
}

/// Feeds [`Hash`] output into SHA-256: stable across processes, unlike
/// `DefaultHasher` whose algorithm may change between Rust releases.
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("a digest has 32 bytes"))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: just the header.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "crowdgate-compile-cache-{name}-{}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn cached_files(dir: &Path, extension: &str) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == extension)
            })
            .count()
    }

    #[test]
    fn stored_component_is_found_and_corruption_detected() {
        let tmp = TempDir::new("roundtrip");
        let engine = Engine::default();
        let cache = CompileCache::open(&tmp.0.join("nested"), &engine).unwrap();
        let key = cache.key(EMPTY_COMPONENT);
        assert!(matches!(cache.load(&engine, &key), Lookup::Miss));

        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        cache.store(&key, &component).unwrap();
        assert!(matches!(cache.load(&engine, &key), Lookup::Hit(_)));

        let (artifact, digest) = cache.paths(&key);
        let mut bytes = fs::read(&artifact).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&artifact, &bytes).unwrap();
        assert!(matches!(cache.load(&engine, &key), Lookup::Invalid(_)));
        fs::remove_file(&digest).unwrap();
        assert!(matches!(cache.load(&engine, &key), Lookup::Invalid(_)));
        cache.store(&key, &component).unwrap();
        assert!(matches!(cache.load(&engine, &key), Lookup::Hit(_)));
    }

    #[test]
    fn key_covers_the_bytes_and_the_engine_configuration() {
        let tmp = TempDir::new("keys");
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let epochs = Engine::new(&config).unwrap();
        let a = CompileCache::open(&tmp.0, &plain).unwrap();
        let b = CompileCache::open(&tmp.0, &epochs).unwrap();
        assert_eq!(a.key(b"x"), a.key(b"x"));
        assert_ne!(a.key(b"x"), a.key(b"y"));
        assert_ne!(a.key(b"x"), b.key(b"x"));
        assert_eq!(a.key(b"x").len(), 64);
    }

    #[test]
    fn directory_writable_by_others_is_refused() {
        let tmp = TempDir::new("private");
        let engine = Engine::default();
        CompileCache::open(&tmp.0, &engine).unwrap();
        assert_eq!(
            fs::metadata(&tmp.0).unwrap().permissions().mode() & 0o777,
            0o700
        );
        fs::set_permissions(&tmp.0, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            CompileCache::open(&tmp.0, &engine),
            Err(CacheError::NotPrivate { .. })
        ));
    }

    #[test]
    fn old_entries_are_pruned() {
        let tmp = TempDir::new("prune");
        let engine = Engine::default();
        let cache = CompileCache::open(&tmp.0, &engine).unwrap();
        let component = Component::new(&engine, EMPTY_COMPONENT).unwrap();
        for i in 0..MAX_ENTRIES + 3 {
            cache.store(&format!("k{i}"), &component).unwrap();
        }
        assert_eq!(cached_files(&tmp.0, "cwasm"), MAX_ENTRIES);
        assert_eq!(cached_files(&tmp.0, "sha256"), MAX_ENTRIES);
        // The newest is kept.
        let last = format!("k{}", MAX_ENTRIES + 2);
        assert!(matches!(cache.load(&engine, &last), Lookup::Hit(_)));
    }
}
