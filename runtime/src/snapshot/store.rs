//! The shared snapshot store (`--snapshot-store URL`): every snapshot
//! written under `data/snapshots` is also uploaded to an object store (a
//! folder of a shared filesystem, S3, GCS or Azure, through the
//! `object_store` crate), under `<prefix>/<name>/<hash>/<file name>`, with
//! the same retention. A process whose data folder lacks a snapshot the
//! store has (a new machine, a lost disk, later a unit handed over from
//! another instance) downloads it before it restores, so it replays only
//! the tail of its sources.
//!
//! The local folder stays the working copy: snapshots are written, listed,
//! verified and restored there, so a store that is down costs uploads
//! (retried with the next snapshot), never a snapshot or a restore.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreExt, ObjectStoreScheme, RetryConfig};

use super::layout::{self, TMP_SUFFIX};

/// How long connecting to the store may take (the client options from
/// the environment, such as `AWS_ALLOW_HTTP`, stay as they are).
const CONNECT_TIMEOUT: &str = "5s";

/// Bytes read from a snapshot file per part of an upload.
const UPLOAD_CHUNK: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "snapshot store {url:?} is not a URL this build reads: {reason}; use file:///shared/folder, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
    )]
    BadUrl { url: String, reason: String },

    #[error(
        "snapshot store {store}: could not {action} {key}: {reason} (check the store's address and credentials: AWS_*, GOOGLE_*, AZURE_* variables)"
    )]
    Remote {
        store: String,
        action: &'static str,
        key: String,
        /// The error and every cause under it: the client's own message
        /// ("HTTP error") hides the one that names the fix.
        reason: String,
    },

    #[error("snapshot store: could not {action} {path}: {source}")]
    Local {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("snapshot store: cannot start its I/O threads: {0}")]
    Runtime(std::io::Error),

    #[error(transparent)]
    Layout(#[from] super::SnapshotError),
}

/// A connection to the shared snapshot store. Its calls block (snapshot
/// threads and the registry are not async); they run on a small runtime
/// of their own, so they work from any thread.
pub struct SnapshotStore {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for SnapshotStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside async code (the
        // server may drop the last handle there).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SnapshotStore {
    /// Connects to the store at `url`, configured by the usual variables of
    /// its cloud (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`,
    /// `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...). A plain
    /// path is a folder (created if missing).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let parsed = match url::Url::parse(url) {
            Ok(parsed) => parsed,
            Err(url::ParseError::RelativeUrlWithoutBase) => {
                let folder = std::path::absolute(url).map_err(|e| bad(e.to_string()))?;
                std::fs::create_dir_all(&folder).map_err(|e| bad(e.to_string()))?;
                url::Url::from_directory_path(&folder)
                    .map_err(|()| bad("not an absolute folder".into()))?
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        if parsed.scheme() == "file" {
            let folder = parsed
                .to_file_path()
                .map_err(|()| bad("not a local folder".into()))?;
            std::fs::create_dir_all(&folder).map_err(|e| bad(e.to_string()))?;
        }
        let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| bad(e.to_string()))?;
        // A store that is down must cost seconds, not the client's default
        // three minutes of retries: a start-up restore waits on it.
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
            ..RetryConfig::default()
        };
        // The three clouds' builders share their shape, not a trait.
        macro_rules! cloud {
            ($builder:ident, $key:ident) => {
                Arc::new(
                    $builder::from_env()
                        .with_url(url)
                        .with_retry(retry)
                        .with_config(
                            $key::Client(ClientConfigKey::ConnectTimeout),
                            CONNECT_TIMEOUT,
                        )
                        .build()
                        .map_err(|e| bad(e.to_string()))?,
                )
            };
        }
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::Local => Arc::new(LocalFileSystem::new()),
            ObjectStoreScheme::AmazonS3 => cloud!(AmazonS3Builder, AmazonS3ConfigKey),
            ObjectStoreScheme::GoogleCloudStorage => {
                cloud!(GoogleCloudStorageBuilder, GoogleConfigKey)
            }
            ObjectStoreScheme::MicrosoftAzure => cloud!(MicrosoftAzureBuilder, AzureConfigKey),
            other => {
                return Err(bad(format!(
                    "{other:?} is not a store snapshots can be kept in"
                )));
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("snapshot-store")
            .enable_all()
            .build()
            .map_err(StoreError::Runtime)?;
        Ok(Self {
            url: url.to_owned(),
            store,
            prefix,
            runtime: Some(runtime),
        })
    }

    /// The URL it was opened with, for logs.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .block_on(future)
    }

    fn version_prefix(&self, name: &str, hash: &str) -> Result<StorePath, StoreError> {
        layout::check_component("projection name", name)?;
        layout::check_component("module hash", hash)?;
        Ok(self.prefix.clone().join(name).join(hash))
    }

    fn remote(
        &self,
        action: &'static str,
        key: &StorePath,
    ) -> impl Fn(object_store::Error) -> StoreError {
        let store = self.url.clone();
        let key = key.to_string();
        move |source| StoreError::Remote {
            store: store.clone(),
            action,
            key: key.clone(),
            reason: with_causes(&source),
        }
    }

    /// Uploads the snapshot file `local` of (`name`, `hash`) under its file
    /// name, then deletes the store's snapshots of that version beyond the
    /// newest `keep`. An upload is one object put (multipart when large):
    /// the store never shows a partial snapshot.
    pub fn upload(
        &self,
        local: &Path,
        name: &str,
        hash: &str,
        keep: usize,
    ) -> Result<(), StoreError> {
        let file_name =
            local
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| StoreError::Local {
                    action: "name",
                    path: local.to_owned(),
                    source: std::io::Error::other("not a snapshot file name"),
                })?;
        let key = self.version_prefix(name, hash)?.join(file_name);
        let mut file = std::fs::File::open(local).map_err(local_error("open", local))?;
        self.block_on(async {
            let mut upload =
                object_store::buffered::BufWriter::new(self.store.clone(), key.clone());
            let mut chunk = vec![0; UPLOAD_CHUNK];
            loop {
                let read = file.read(&mut chunk).map_err(local_error("read", local))?;
                if read == 0 {
                    break;
                }
                if let Err(e) = upload.put(chunk[..read].to_vec().into()).await {
                    let _ = upload.abort().await;
                    return Err(self.remote("upload", &key)(e));
                }
            }
            tokio::io::AsyncWriteExt::shutdown(&mut upload)
                .await
                .map_err(|e| StoreError::Remote {
                    store: self.url.clone(),
                    action: "upload",
                    key: key.to_string(),
                    reason: with_causes(&e),
                })
        })?;
        self.prune(name, hash, keep)
    }

    /// Uploads a snapshot just written, logging the outcome: a failed
    /// upload costs only this copy (the next snapshot is uploaded anew).
    pub fn publish(&self, info: &super::SnapshotInfo, keep: usize) {
        let started = std::time::Instant::now();
        match self.upload(&info.path, &info.meta.name, &info.meta.hash, keep) {
            Ok(()) => tracing::info!(
                store = %self.url,
                file = %info.path.display(),
                took_ms = started.elapsed().as_millis() as u64,
                "snapshot uploaded to the snapshot store"
            ),
            Err(e) => tracing::warn!("{e}; the snapshot stays in the data folder"),
        }
    }

    /// The store's snapshot files of (`name`, `hash`): (order from the file
    /// name, key), newest first. Objects named otherwise are not ours.
    fn list(&self, name: &str, hash: &str) -> Result<Vec<Stored>, StoreError> {
        let prefix = self.version_prefix(name, hash)?;
        let mut found = self.block_on(async {
            let mut listing = self.store.list(Some(&prefix));
            let mut found = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(self.remote("list", &prefix))?;
                let order = meta.location.filename().and_then(layout::parse_file_name);
                if let Some(order) = order {
                    found.push((order, meta.location));
                }
            }
            Ok::<_, StoreError>(found)
        })?;
        found.sort_by_key(|stored| std::cmp::Reverse(stored.0));
        Ok(found)
    }

    fn prune(&self, name: &str, hash: &str, keep: usize) -> Result<(), StoreError> {
        let old: Vec<StorePath> = self
            .list(name, hash)?
            .into_iter()
            .skip(keep.max(1))
            .map(|(_, key)| key)
            .collect();
        self.block_on(async {
            for key in &old {
                match self.store.delete(key).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(self.remote("delete", key)(e)),
                }
            }
            Ok(())
        })
    }

    /// Downloads the store's newest snapshot of (`name`, `hash`) into the
    /// version's folder under `dir`, when it is newer than every snapshot
    /// there. Returns the downloaded file (checked by whoever restores it,
    /// like any local snapshot), or `None` when the folder is up to date.
    pub fn fetch_newer(
        &self,
        dir: &Path,
        name: &str,
        hash: &str,
    ) -> Result<Option<PathBuf>, StoreError> {
        let Some((order, key)) = self.list(name, hash)?.into_iter().next() else {
            return Ok(None);
        };
        let folder = layout::version_dir(dir, name, hash)?;
        let newest_local = layout::snapshot_files(&folder)?
            .into_iter()
            .filter_map(|f| f.order)
            .max();
        if newest_local.is_some_and(|local| local >= order) {
            return Ok(None);
        }
        std::fs::create_dir_all(&folder).map_err(local_error("create", &folder))?;
        // Named like the writer's temp files: a download cut short is
        // never taken for a snapshot, and the pruner sweeps it.
        let tmp = tempfile::Builder::new()
            .prefix(".")
            .suffix(TMP_SUFFIX)
            .tempfile_in(&folder)
            .map_err(local_error("create a temp file in", &folder))?;
        let tmp_path = tmp.path().to_owned();
        self.block_on(async {
            let got = self
                .store
                .get(&key)
                .await
                .map_err(self.remote("download", &key))?;
            let mut body = got.into_stream();
            let mut out = std::io::BufWriter::new(tmp.as_file());
            while let Some(bytes) = body.next().await {
                let bytes = bytes.map_err(self.remote("download", &key))?;
                out.write_all(&bytes)
                    .map_err(local_error("write", &tmp_path))?;
            }
            out.flush().map_err(local_error("write", &tmp_path))
        })?;
        tmp.as_file()
            .sync_all()
            .map_err(local_error("sync", &tmp_path))?;
        let path = folder.join(layout::file_name(order.0, order.1));
        tmp.persist(&path)
            .map_err(|e| local_error("rename into place", &path)(e.error))?;
        layout::sync_dir(&folder)?;
        Ok(Some(path))
    }
}

/// Maps an I/O error on `path` to [`StoreError::Local`].
fn local_error(action: &'static str, path: &Path) -> impl Fn(std::io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Local {
        action,
        path: path.clone(),
        source,
    }
}

/// A snapshot in the store: (created ms, events applied) from its name,
/// and its key.
type Stored = ((u64, u64), StorePath);

/// `error: cause: cause ...`, each distinct message once.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let message = next.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot_file(
        dir: &Path,
        name: &str,
        hash: &str,
        created: u64,
        events: u64,
        body: &[u8],
    ) -> PathBuf {
        let folder = layout::version_dir(dir, name, hash).unwrap();
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(layout::file_name(created, events));
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn uploads_keep_the_newest_and_a_new_machine_downloads_the_newest() {
        let remote = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(remote.path().to_str().unwrap()).unwrap();
        let machine_a = tempfile::tempdir().unwrap();
        for (created, body) in [(1, b"one"), (2, b"two"), (3, b"thr")] {
            let file = snapshot_file(
                machine_a.path(),
                "orders",
                "ab12",
                created,
                created * 10,
                body,
            );
            store.upload(&file, "orders", "ab12", 2).unwrap();
        }
        let listed: Vec<_> = store
            .list("orders", "ab12")
            .unwrap()
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        assert_eq!(
            listed,
            vec![(3, 30), (2, 20)],
            "retention keeps the newest two"
        );

        let machine_b = tempfile::tempdir().unwrap();
        let fetched = store
            .fetch_newer(machine_b.path(), "orders", "ab12")
            .unwrap()
            .unwrap();
        assert_eq!(fetched.file_name().unwrap(), "3-30.snap");
        assert_eq!(std::fs::read(&fetched).unwrap(), b"thr");
        assert!(
            store
                .fetch_newer(machine_b.path(), "orders", "ab12")
                .unwrap()
                .is_none(),
            "up to date"
        );
        assert!(
            store
                .fetch_newer(machine_b.path(), "orders", "ffff")
                .unwrap()
                .is_none(),
            "no such version"
        );

        // A newer local snapshot wins over the store's.
        let machine_c = tempfile::tempdir().unwrap();
        snapshot_file(machine_c.path(), "orders", "ab12", 9, 90, b"new");
        assert!(
            store
                .fetch_newer(machine_c.path(), "orders", "ab12")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn names_that_escape_the_prefix_are_refused() {
        let remote = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(remote.path().to_str().unwrap()).unwrap();
        let local = tempfile::tempdir().unwrap();
        assert!(store.fetch_newer(local.path(), "..", "ab12").is_err());
        assert!(store.fetch_newer(local.path(), "orders", "a/b").is_err());
    }

    #[test]
    fn an_unknown_scheme_names_the_url_and_the_forms_read() {
        let err = SnapshotStore::open("ftp://host/x").unwrap_err().to_string();
        assert!(
            err.contains("ftp://host/x") && err.contains("s3://bucket/prefix"),
            "{err}"
        );
    }
}
