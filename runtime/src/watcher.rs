//! Watches the modules folder and reports settled changes of `*.wasm`
//! module files and of their `*.toml` sidecars.
//!
//! File-system notifications are only hints about *when* to look: every
//! decision is made from `stat`, and the folder is also rescanned every
//! second. A lost, merged or reordered notification (inotify queue overflow,
//! a network or container file system that sends none, a watch limit) thus
//! costs latency, never correctness.
//!
//! A path is reported once what `stat` says about it (size, mtime and, on
//! Unix, device and inode) has not changed for the settle time and differs
//! from what was last reported for it. Removals wait for the settle time too,
//! so that a delete-then-recreate save or a rename away and back reports at
//! most one `Changed` and no `Removed`.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// How often the folder is rescanned while it exists (the polling fallback,
/// and a safety net for notifications that never come).
const RESCAN_EVERY: Duration = Duration::from_secs(1);
/// How often a missing folder is looked for.
const MISSING_DIR_POLL: Duration = Duration::from_millis(200);
/// Most notifications handled between two looks at the deadlines.
const MAX_BATCH: usize = 4096;

/// A settled change of one module file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModuleEvent {
    /// `path` (a `*.wasm` file) appeared or changed and has been stable (same
    /// size and mtime) for the settle time.
    Changed(PathBuf),
    /// `path` disappeared (deleted or renamed away).
    Removed(PathBuf),
    /// The sidecar of module `path` (`path` with `.toml` for `.wasm`)
    /// appeared, changed or disappeared, and has been stable for the
    /// settle time.
    SidecarChanged(PathBuf),
}

impl ModuleEvent {
    /// The module file this event is about (`dir` joined with the file name).
    pub fn path(&self) -> &Path {
        match self {
            Self::Changed(path) | Self::Removed(path) | Self::SidecarChanged(path) => path,
        }
    }
}

/// Why the modules folder cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "modules folder {dir} is not a folder: point the modules folder at a directory, \
         or move that file away"
    )]
    NotADirectory { dir: PathBuf },
    #[error(
        "modules folder {dir} cannot be read: {source}; check that this user may list it \
         (and that no part of the path is a file)"
    )]
    Unreadable { dir: PathBuf, source: io::Error },
    #[error(
        "cannot start the thread watching modules folder {dir}: {source}; \
         the process is out of threads or memory"
    )]
    Spawn { dir: PathBuf, source: io::Error },
}

/// Current `*.wasm` files in `dir` (not temp files), sorted: for the initial
/// load. Prefer [`ModuleWatcher::initial_files`], which has no gap between
/// listing and watching.
pub fn module_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = watched_paths(dir)?
        .into_iter()
        .filter(|path| is_module_path(path) && stamp(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}

/// Whether a file name is a module: `*.wasm`, not hidden. Temp and partial
/// names (`x.wasm.tmp`, `x.wasm~`, `.x.wasm.swp`, `x.wasm.part`,
/// `x.wasm.crdownload`) fail the extension test; hidden names are editors'
/// and tools' scratch files (`.x.wasm`, Kubernetes' `..data`).
pub fn is_module_name(name: &OsStr) -> bool {
    // Non-UTF-8 names cannot become projection names.
    name.to_str().is_some_and(|name| {
        !name.starts_with('.') && name.len() > ".wasm".len() && name.ends_with(".wasm")
    })
}

/// Whether a file name is a module's sidecar: `*.toml`, not hidden (the
/// same temp and scratch names are left out as for modules).
pub fn is_sidecar_name(name: &OsStr) -> bool {
    name.to_str().is_some_and(|name| {
        !name.starts_with('.') && name.len() > ".toml".len() && name.ends_with(".toml")
    })
}

fn is_watched_name(name: &OsStr) -> bool {
    is_module_name(name) || is_sidecar_name(name)
}

fn is_module_path(path: &Path) -> bool {
    path.file_name().is_some_and(is_module_name)
}

/// Watches a modules folder; see the module docs. Stops when dropped.
pub struct ModuleWatcher {
    tx: Sender<Msg>,
    thread: Option<JoinHandle<()>>,
    initial: Vec<PathBuf>,
}

impl ModuleWatcher {
    /// Watches `dir` and calls `sink` from a background thread, in order,
    /// once per settled change.
    ///
    /// Module files already in `dir` are not reported: they are listed by
    /// [`Self::initial_files`], and any later change to them is. If `dir` does
    /// not exist yet it is looked for every 200 ms, and the files in it are
    /// reported as `Changed` once it appears; if it disappears, its files are
    /// reported as `Removed`. `dir` may be a symlink to a folder; reported
    /// paths are `dir` joined with the file name.
    pub fn start(
        dir: &Path,
        settle: Duration,
        sink: impl FnMut(ModuleEvent) + Send + 'static,
    ) -> Result<Self, WatchError> {
        Self::start_with(dir, settle, Backend::Notify, sink)
    }

    fn start_with(
        dir: &Path,
        settle: Duration,
        backend: Backend,
        sink: impl FnMut(ModuleEvent) + Send + 'static,
    ) -> Result<Self, WatchError> {
        let (tx, rx) = mpsc::channel();
        let mut worker = Worker::new(dir, settle, backend, tx.clone());
        // Watch before listing, so that nothing changed in between is missed.
        let initial = worker.start()?;
        let thread = thread::Builder::new()
            .name("module-watcher".into())
            .spawn(move || worker.run(&rx, sink))
            .map_err(|source| WatchError::Spawn {
                dir: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            tx,
            thread: Some(thread),
            initial,
        })
    }

    /// The module files that were in the folder at start, sorted: load these
    /// first; changes after the listing are reported to the sink.
    pub fn initial_files(&self) -> &[PathBuf] {
        &self.initial
    }

    /// Stops the thread (bounded: returns within ~settle + 100 ms, unless the
    /// sink is blocked). No event is delivered after it returns.
    pub fn stop(self) {
        // Drop does the work.
    }
}

impl Drop for ModuleWatcher {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take() {
            // A sink that drops its own watcher would otherwise join itself.
            if thread.thread().id() != thread::current().id() && thread.join().is_err() {
                tracing::warn!("the modules folder watcher's sink panicked");
            }
        }
    }
}

/// Where change hints come from. Tests use `Poll` to exercise the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    /// The platform's notifications plus the periodic rescan.
    Notify,
    /// The periodic rescan only.
    Poll,
}

enum Msg {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// Device and inode number, where the platform has them.
type FileId = Option<(u64, u64)>;

/// What `stat` says about a module file; a change in any field is a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    id: FileId,
}

/// Stamp of `path` if it is (or links to) a regular file.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::metadata(path).ok().filter(fs::Metadata::is_file)?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        id: file_id(&meta),
    })
}

/// Device and inode: tells a replaced file or folder from the same one.
#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> FileId {
    None
}

/// Paths in `dir` with a module's or a sidecar's name, whatever they are.
fn watched_paths(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if is_watched_name(&name) {
            paths.push(dir.join(name));
        }
    }
    Ok(paths)
}

/// A path whose state differs from the last report, waiting to settle.
#[derive(Debug)]
struct Pending {
    stamp: Option<Stamp>,
    since: Instant,
}

/// What one batch of notifications asks for.
#[derive(Debug, Default)]
struct Batch {
    /// Module paths that saw write activity.
    touched: HashSet<PathBuf>,
    /// Rescan the folder (and check it is still the same folder).
    refresh: bool,
    /// Watch the folder again: the old watch is gone.
    rewatch: bool,
}

struct Worker {
    /// As given: reported paths are `dir.join(name)`.
    dir: PathBuf,
    /// `dir` made absolute, as notify reports it.
    abs_dir: PathBuf,
    settle: Duration,
    backend: Backend,
    tx: Sender<Msg>,
    fs_watcher: Option<RecommendedWatcher>,
    /// Identity of the folder being watched; `None` while it is missing.
    folder: Option<FileId>,
    reported: HashMap<PathBuf, Stamp>,
    pending: HashMap<PathBuf, Pending>,
    next_refresh: Instant,
    /// Last scan error logged, so that a lasting one is logged once.
    scan_error: Option<String>,
}

impl Worker {
    fn new(dir: &Path, settle: Duration, backend: Backend, tx: Sender<Msg>) -> Self {
        Self {
            dir: dir.to_owned(),
            abs_dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()),
            // A zero settle time would spin while a file is being written.
            settle: settle.max(Duration::from_millis(10)),
            backend,
            tx,
            fs_watcher: None,
            folder: None,
            reported: HashMap::new(),
            pending: HashMap::new(),
            next_refresh: Instant::now(),
            scan_error: None,
        }
    }

    /// Watches the folder if it exists and takes its files as already
    /// reported; returns them sorted.
    fn start(&mut self) -> Result<Vec<PathBuf>, WatchError> {
        let meta = match fs::metadata(&self.dir) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::info!(dir = %self.dir.display(), "modules folder does not exist yet; waiting for it");
                return Ok(Vec::new());
            }
            Err(source) => {
                return Err(WatchError::Unreadable {
                    dir: self.dir.clone(),
                    source,
                });
            }
        };
        if !meta.is_dir() {
            return Err(WatchError::NotADirectory {
                dir: self.dir.clone(),
            });
        }
        self.folder = Some(file_id(&meta));
        self.fs_watcher = self.watch();
        let paths = watched_paths(&self.dir).map_err(|source| WatchError::Unreadable {
            dir: self.dir.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for path in paths {
            if let Some(stamp) = stamp(&path) {
                self.reported.insert(path.clone(), stamp);
                if is_module_path(&path) {
                    files.push(path);
                }
            }
        }
        files.sort();
        self.next_refresh = Instant::now() + RESCAN_EVERY;
        Ok(files)
    }

    fn watch(&self) -> Option<RecommendedWatcher> {
        if self.backend == Backend::Poll {
            return None;
        }
        let tx = self.tx.clone();
        let handler = move |event| {
            // Fails only once the worker has stopped.
            let _ = tx.send(Msg::Fs(event));
        };
        let watcher =
            RecommendedWatcher::new(handler, notify::Config::default()).and_then(|mut watcher| {
                watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
                Ok(watcher)
            });
        match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    %error,
                    "cannot watch the modules folder; rescanning it every second instead \
                     (on Linux, raise fs.inotify.max_user_watches or max_user_instances \
                     if a limit was reached)"
                );
                None
            }
        }
    }

    fn run(mut self, rx: &Receiver<Msg>, mut sink: impl FnMut(ModuleEvent)) {
        loop {
            let mut batch = Batch::default();
            let timeout = self.next_wake().saturating_duration_since(Instant::now());
            match rx.recv_timeout(timeout) {
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Msg::Fs(event)) => {
                    self.note(event, &mut batch);
                    // Coalesce a burst (a `cp` is many writes) into one pass,
                    // bounded so that other files' deadlines are still met.
                    for _ in 0..MAX_BATCH {
                        match rx.try_recv() {
                            Ok(Msg::Fs(event)) => self.note(event, &mut batch),
                            Ok(Msg::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                            Err(mpsc::TryRecvError::Empty) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if batch.refresh || now >= self.next_refresh {
                self.refresh(now, batch.rewatch);
            }
            for path in batch.touched {
                self.touch(path, now, true);
            }
            for event in self.settled(now) {
                tracing::debug!(?event, "module file settled");
                sink(event);
            }
        }
    }

    fn next_wake(&self) -> Instant {
        self.pending
            .values()
            .map(|pending| pending.since + self.settle)
            .fold(self.next_refresh, Instant::min)
    }

    fn note(&mut self, event: notify::Result<notify::Event>, batch: &mut Batch) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                if self.fs_watcher.take().is_some() {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        %error,
                        "modules folder notifications failed; rescanning it every second instead"
                    );
                }
                batch.refresh = true;
                return;
            }
        };
        if event.need_rescan() {
            batch.refresh = true;
        }
        if matches!(event.kind, EventKind::Access(access)
            if access != AccessKind::Close(AccessMode::Write))
        {
            // Reads (ours included, when a module is loaded) change nothing.
            return;
        }
        let content_only = matches!(
            event.kind,
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_))
        );
        for path in &event.paths {
            let module = path.file_name().filter(|name| is_watched_name(name));
            if *path == self.abs_dir {
                // The folder itself moved or went: its watch is gone, even if
                // a new folder with the same inode number is already there.
                batch.refresh = true;
                batch.rewatch |= matches!(
                    event.kind,
                    EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
                );
            } else if let Some(name) = module {
                batch.touched.insert(self.dir.join(name));
            } else if !content_only {
                // Another name was created, removed or renamed: a swapped
                // symlink (Kubernetes' `..data`) can change what module names
                // point to.
                batch.refresh = true;
            }
        }
    }

    /// Re-finds the folder (it may have appeared, gone or been replaced) and
    /// compares every module path with what was last reported.
    fn refresh(&mut self, now: Instant, rewatch: bool) {
        let current = fs::metadata(&self.dir)
            .ok()
            .filter(fs::Metadata::is_dir)
            .map(|meta| file_id(&meta));
        if rewatch || current != self.folder {
            // Drop the old watch first: it may still be on a replaced folder.
            self.fs_watcher = None;
            match current {
                Some(_) => {
                    tracing::info!(dir = %self.dir.display(), "watching modules folder");
                    self.fs_watcher = self.watch();
                }
                None => tracing::warn!(
                    dir = %self.dir.display(),
                    "modules folder is gone; its modules count as removed until it is back"
                ),
            }
            self.folder = current;
        }
        self.next_refresh = now
            + if self.folder.is_some() {
                RESCAN_EVERY
            } else {
                MISSING_DIR_POLL
            };

        let listed = if self.folder.is_some() {
            match watched_paths(&self.dir) {
                Ok(paths) => {
                    if self.scan_error.take().is_some() {
                        tracing::info!(dir = %self.dir.display(), "modules folder readable again");
                    }
                    paths
                }
                Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
                Err(error) => {
                    // Keep what was reported rather than report removals.
                    let message = error.to_string();
                    if self.scan_error.as_ref() != Some(&message) {
                        tracing::warn!(dir = %self.dir.display(), %error, "cannot list the modules folder");
                        self.scan_error = Some(message);
                    }
                    return;
                }
            }
        } else {
            Vec::new()
        };
        let mut paths: HashSet<PathBuf> = listed.into_iter().collect();
        paths.extend(self.reported.keys().cloned());
        paths.extend(self.pending.keys().cloned());
        for path in paths {
            self.touch(path, now, false);
        }
    }

    /// Starts or restarts the settle time of `path` if its state differs from
    /// the last report or the pending one; `activity` (a write notification)
    /// restarts it anyway, since coarse mtimes can hide a write.
    fn touch(&mut self, path: PathBuf, now: Instant, activity: bool) {
        let stamp = stamp(&path);
        match self.pending.get_mut(&path) {
            Some(pending) => {
                if activity || pending.stamp != stamp {
                    pending.stamp = stamp;
                    pending.since = now;
                }
            }
            None => {
                if activity || self.reported.get(&path) != stamp.as_ref() {
                    self.pending.insert(path, Pending { stamp, since: now });
                }
            }
        }
    }

    /// Events for paths whose state held for the settle time: removals first
    /// (a rename reads as old name gone, new name here), then by path.
    fn settled(&mut self, now: Instant) -> Vec<ModuleEvent> {
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, pending)| now >= pending.since + self.settle)
            .map(|(path, _)| path.clone())
            .collect();
        let mut events = Vec::new();
        for path in due {
            // Looked at again now, so a Changed file exists when reported.
            let stamp = stamp(&path);
            let Some(pending) = self.pending.get_mut(&path) else {
                continue;
            };
            if pending.stamp != stamp {
                pending.stamp = stamp;
                pending.since = now;
                continue;
            }
            self.pending.remove(&path);
            let sidecar = !is_module_path(&path);
            match stamp {
                Some(stamp) => {
                    if self.reported.get(&path) != Some(&stamp) {
                        self.reported.insert(path.clone(), stamp);
                        events.push(if sidecar {
                            ModuleEvent::SidecarChanged(path.with_extension("wasm"))
                        } else {
                            ModuleEvent::Changed(path)
                        });
                    }
                }
                None => {
                    if self.reported.remove(&path).is_some() {
                        events.push(if sidecar {
                            ModuleEvent::SidecarChanged(path.with_extension("wasm"))
                        } else {
                            ModuleEvent::Removed(path)
                        });
                    }
                }
            }
        }
        // Sidecars last: a module and its sidecar deployed together load
        // as one change (the module reads its sidecar), and the sidecar's
        // event then finds nothing left to do.
        events.sort_by(|a, b| {
            let rank = |event: &ModuleEvent| match event {
                ModuleEvent::Removed(_) => 0,
                ModuleEvent::Changed(_) => 1,
                ModuleEvent::SidecarChanged(_) => 2,
            };
            (rank(a), a.path()).cmp(&(rank(b), b.path()))
        });
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SETTLE: Duration = Duration::from_millis(150);
    /// Generous: events are waited for, never timed.
    const DEADLINE: Duration = Duration::from_secs(30);

    /// An event and the file's size when the sink saw it.
    #[derive(Debug)]
    struct Seen {
        event: ModuleEvent,
        len: Option<u64>,
    }

    struct Harness {
        watcher: ModuleWatcher,
        rx: Receiver<Seen>,
    }

    impl Harness {
        fn start(dir: &Path, settle: Duration) -> Self {
            Self::start_with(dir, settle, Backend::Notify)
        }

        fn start_with(dir: &Path, settle: Duration, backend: Backend) -> Self {
            let (tx, rx) = mpsc::channel();
            let watcher = ModuleWatcher::start_with(dir, settle, backend, move |event| {
                let len = fs::metadata(event.path()).ok().map(|meta| meta.len());
                let _ = tx.send(Seen { event, len });
            })
            .expect("watcher starts");
            Self { watcher, rx }
        }

        fn next(&self) -> Seen {
            self.rx
                .recv_timeout(DEADLINE)
                .expect("an event within the deadline")
        }

        /// Asserts that nothing else was reported: a later change to another
        /// file must be the next event (anything pending would come first).
        fn assert_quiet(&self, dir: &Path) -> PathBuf {
            static SENTINELS: AtomicUsize = AtomicUsize::new(0);
            let n = SENTINELS.fetch_add(1, Ordering::Relaxed);
            let sentinel = dir.join(format!("zz-sentinel-{n}.wasm"));
            fs::write(&sentinel, b"sentinel").unwrap();
            assert_eq!(self.next().event, changed(&sentinel));
            sentinel
        }
    }

    fn changed(path: &Path) -> ModuleEvent {
        ModuleEvent::Changed(path.to_owned())
    }

    fn removed(path: &Path) -> ModuleEvent {
        ModuleEvent::Removed(path.to_owned())
    }

    #[test]
    fn new_file_is_reported_once() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        let file = tmp.path().join("a.wasm");
        fs::write(&file, b"module").unwrap();
        let seen = watch.next();
        assert_eq!(seen.event, changed(&file));
        assert_eq!(seen.len, Some(6));
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn slow_write_is_reported_once_complete() {
        let tmp = tempfile::tempdir().unwrap();
        // The pause must stay under the settle time: a wide margin for a
        // loaded machine.
        let watch = Harness::start(tmp.path(), Duration::from_millis(600));
        let file = tmp.path().join("big.wasm");
        let content = vec![7u8; 1 << 20];
        let mut out = fs::File::create(&file).unwrap();
        out.write_all(&content[..content.len() / 2]).unwrap();
        out.flush().unwrap();
        thread::sleep(Duration::from_millis(100));
        out.write_all(&content[content.len() / 2..]).unwrap();
        drop(out);
        let seen = watch.next();
        assert_eq!(seen.event, changed(&file));
        assert_eq!(seen.len, Some(content.len() as u64));
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn many_writes_are_one_change() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        let file = tmp.path().join("copied.wasm");
        let mut out = fs::File::create(&file).unwrap();
        for _ in 0..256 {
            // Unbuffered: one notification per write, as from `cp`.
            out.write_all(&[1u8; 4096]).unwrap();
        }
        drop(out);
        let seen = watch.next();
        assert_eq!(seen.event, changed(&file));
        assert_eq!(seen.len, Some(256 * 4096));
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn atomic_save_reports_the_final_name_only() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        let temp = tmp.path().join("x.wasm.tmp");
        let file = tmp.path().join("x.wasm");
        fs::write(&temp, b"new module").unwrap();
        fs::rename(&temp, &file).unwrap();
        let seen = watch.next();
        assert_eq!(seen.event, changed(&file));
        assert_eq!(seen.len, Some(10));
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn delete_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a.wasm");
        fs::write(&file, b"module").unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        assert_eq!(watch.watcher.initial_files(), std::slice::from_ref(&file));
        fs::remove_file(&file).unwrap();
        assert_eq!(watch.next().event, removed(&file));
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn rename_is_removed_then_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        let a = tmp.path().join("a.wasm");
        let b = tmp.path().join("b.wasm");
        fs::write(&a, b"module").unwrap();
        assert_eq!(watch.next().event, changed(&a));
        fs::rename(&a, &b).unwrap();
        let mut events = vec![watch.next().event, watch.next().event];
        events.sort_by(|x, y| x.path().cmp(y.path()));
        assert_eq!(events, [removed(&a), changed(&b)]);
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn files_present_at_start_are_listed_not_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a.wasm");
        let b = tmp.path().join("b.wasm");
        fs::write(&b, b"b").unwrap();
        fs::write(&a, b"a").unwrap();
        fs::write(tmp.path().join("notes.txt"), b"x").unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        assert_eq!(watch.watcher.initial_files(), [a.clone(), b.clone()]);
        assert_eq!(module_files(tmp.path()).unwrap(), [a.clone(), b]);
        watch.assert_quiet(tmp.path());
        // A later change to one of them is reported.
        fs::write(&a, b"a, version 2").unwrap();
        assert_eq!(watch.next().event, changed(&a));
    }

    #[test]
    fn reads_and_unchanged_files_are_not_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a.wasm");
        fs::write(&file, b"module").unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        // Loading a module opens and reads it; the open and close are
        // notified, but nothing changed.
        assert_eq!(fs::read(&file).unwrap(), b"module");
        let perms = fs::metadata(&file).unwrap().permissions();
        fs::set_permissions(&file, perms).unwrap();
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn temp_files_are_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        for name in [
            ".a.wasm",
            ".a.wasm.swp",
            "a.wasm~",
            "a.wasm.tmp",
            "a.wasm.swp",
            "a.wasm.part",
            "a.wasm.crdownload",
            "a.txt",
            ".wasm",
        ] {
            fs::write(tmp.path().join(name), b"partial").unwrap();
        }
        // A folder with a module's name is not a module either.
        fs::create_dir(tmp.path().join("dir.wasm")).unwrap();
        let sentinel = watch.assert_quiet(tmp.path());
        assert_eq!(module_files(tmp.path()).unwrap(), [sentinel]);
    }

    #[test]
    fn file_that_comes_and_goes_within_settle_is_not_reported() {
        let tmp = tempfile::tempdir().unwrap();
        // Both steps must fall within the settle time: a wide margin.
        let watch = Harness::start(tmp.path(), Duration::from_millis(600));
        let file = tmp.path().join("flicker.wasm");
        fs::write(&file, b"module").unwrap();
        fs::remove_file(&file).unwrap();
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn folder_created_after_start() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("later").join("modules");
        let watch = Harness::start(&dir, SETTLE);
        assert!(watch.watcher.initial_files().is_empty());
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.wasm");
        fs::write(&file, b"module").unwrap();
        assert_eq!(watch.next().event, changed(&file));
        watch.assert_quiet(&dir);
    }

    #[test]
    fn folder_removed_and_recreated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("modules");
        fs::create_dir(&dir).unwrap();
        let a = dir.join("a.wasm");
        fs::write(&a, b"module").unwrap();
        let watch = Harness::start(&dir, SETTLE);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(watch.next().event, removed(&a));
        fs::create_dir(&dir).unwrap();
        let b = dir.join("b.wasm");
        fs::write(&b, b"module").unwrap();
        assert_eq!(watch.next().event, changed(&b));
        watch.assert_quiet(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        let link = tmp.path().join("link");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let watch = Harness::start(&link, SETTLE);
        fs::write(real.join("a.wasm"), b"module").unwrap();
        let seen = watch.next();
        assert_eq!(seen.event, changed(&link.join("a.wasm")));
        assert_eq!(seen.len, Some(6));
        fs::remove_file(real.join("a.wasm")).unwrap();
        assert_eq!(watch.next().event, removed(&link.join("a.wasm")));
        watch.assert_quiet(&link);
    }

    #[test]
    fn polling_fallback_reports_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start_with(tmp.path(), SETTLE, Backend::Poll);
        let file = tmp.path().join("a.wasm");
        fs::write(&file, b"module").unwrap();
        assert_eq!(watch.next().event, changed(&file));
        fs::remove_file(&file).unwrap();
        assert_eq!(watch.next().event, removed(&file));
        watch.assert_quiet(tmp.path());
    }

    #[test]
    fn not_a_folder_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("modules");
        fs::write(&file, b"").unwrap();
        let error = ModuleWatcher::start(&file, SETTLE, |_| {})
            .err()
            .expect("a file is not a folder");
        assert!(matches!(error, WatchError::NotADirectory { .. }));
        assert!(error.to_string().contains(&file.display().to_string()));
    }

    #[test]
    fn stop_returns() {
        let tmp = tempfile::tempdir().unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        // Leave work pending: stop must not wait for it.
        fs::write(tmp.path().join("a.wasm"), b"module").unwrap();
        let started = Instant::now();
        watch.watcher.stop();
        // Bounded by design; the deadline here only catches a hang.
        assert!(started.elapsed() < DEADLINE);
        // The thread is gone, and the sink with it.
        while let Ok(seen) = watch.rx.recv_timeout(DEADLINE) {
            assert_eq!(seen.event, changed(&tmp.path().join("a.wasm")));
        }
    }

    #[test]
    fn sidecar_changes_are_reported_for_their_module() {
        let tmp = tempfile::tempdir().unwrap();
        let sidecar = tmp.path().join("a.toml");
        fs::write(&sidecar, b"error_policy = \"halt\"\n").unwrap();
        let watch = Harness::start(tmp.path(), SETTLE);
        assert!(
            watch.watcher.initial_files().is_empty(),
            "a sidecar is no module"
        );
        let module = tmp.path().join("a.wasm");
        fs::write(&sidecar, b"error_policy = \"skip\"\n").unwrap();
        assert_eq!(
            watch.next().event,
            ModuleEvent::SidecarChanged(module.clone())
        );
        fs::remove_file(&sidecar).unwrap();
        assert_eq!(
            watch.next().event,
            ModuleEvent::SidecarChanged(module.clone())
        );
        // Editors' scratch copies of a sidecar are not sidecars.
        fs::write(tmp.path().join(".a.toml.swp"), b"x").unwrap();
        fs::write(tmp.path().join("a.toml~"), b"x").unwrap();
        let sentinel = watch.assert_quiet(tmp.path());
        assert_eq!(module_files(tmp.path()).unwrap(), [sentinel]);
    }

    #[test]
    fn module_names() {
        for name in ["a.wasm", "order-totals.wasm", "x.tmp.wasm"] {
            assert!(is_module_name(OsStr::new(name)), "{name}");
        }
        for name in [
            ".a.wasm",
            ".wasm",
            "a.wasm~",
            "a.wasm.tmp",
            "a.WASM",
            "a.wat",
        ] {
            assert!(!is_module_name(OsStr::new(name)), "{name}");
        }
    }
}
