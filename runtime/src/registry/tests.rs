//! The registry's decisions, driven one command at a time: no controller
//! thread runs, so a worker's report (caught up, halted) is acted on exactly
//! when a test says, and a shadow build can be held in the shadow.

use std::time::Duration;

use super::*;
use crate::event::NewRecord;
use crate::source::EmbeddedLog;
use crate::worker::ErrorPolicy;

/// Generous: conditions are waited for, never timed.
const PATIENCE: Duration = Duration::from_secs(60);

/// A core module (`wit/core-abi.md`) that counts the events it is given
/// under key `n`; `$FAIL` makes every batch fail on its first event.
const COUNTER: &str = r#"
(module
  (import "projector" "state_get" (func $get (param i32 i32 i32 i32) (result i64)))
  (import "projector" "state_put" (func $put (param i32 i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "n")
  (data (i32.const 256) "$DESCRIPTOR")
  (data (i32.const 1024) "\00\00\00\00deliberate failure")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "projector_abi_version") (result i32) (i32.const 1))
  (func (export "projector_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "projector_describe") (result i64)
    (i64.or (i64.shl (i64.const 256) (i64.const 32)) (i64.const $DESCRIPTOR_LEN)))
  (func $count (result i64)
    (if (result i64)
      (i64.eq (call $get (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 8)) (i64.const 8))
      (then (i64.load (i32.const 32)))
      (else (i64.const 0))))
  (func (export "projector_handle") (param $ptr i32) (param $len i32) (result i64)
    (global.set $heap (i32.const 4096))
    (if (i32.const $FAIL)
      (then (return (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const 22)))))
    (i64.store (i32.const 32)
      (i64.add (call $count) (i64.extend_i32_u (i32.load (local.get $ptr)))))
    (call $put (i32.const 16) (i32.const 1) (i32.const 32) (i32.const 8))
    (i64.const 0))
  (func (export "projector_query") (param i32 i32 i32 i32) (result i64)
    (i64.const 0))
)
"#;

fn counter(name: &str, version: &str, state_version: u32, fail: bool) -> Vec<u8> {
    let descriptor = serde_json::json!({
        "name": name, "version": version, "sources": ["orders"],
        "state_version": state_version, "queries": [],
    })
    .to_string();
    let text = COUNTER
        .replace("$DESCRIPTOR_LEN", &descriptor.len().to_string())
        .replace("$DESCRIPTOR", &descriptor.replace('"', "\\\""))
        .replace("$FAIL", if fail { "1" } else { "0" });
    wat::parse_str(text).unwrap()
}

struct Harness {
    dir: tempfile::TempDir,
    log: EmbeddedLog,
    inner: Arc<Inner>,
    inbox: Receiver<Command>,
}

impl Harness {
    fn new(config: WorkerConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("modules")).unwrap();
        let log = EmbeddedLog::open(&dir.path().join("data/log.redb"), 1).unwrap();
        let host = WasmHost::new(&dir.path().join("data/cache"), config.limits.clone()).unwrap();
        let (commands, inbox) = mpsc::channel();
        let inner = Arc::new(Inner {
            host,
            sources: Sources {
                embedded: Arc::new(log.clone()),
                kafka: None,
            },
            files: StateFiles::new(
                dir.path().join("data/projections"),
                dir.path().join("data/snapshots"),
                config.state_cache_bytes,
                None,
            ),
            config,
            slots: RwLock::new(BTreeMap::new()),
            slot_changes: tokio::sync::watch::Sender::new(0),
            rejected: RwLock::new(Vec::new()),
            commands: Mutex::new(commands),
            layout_retries: Mutex::default(),
            quiet_rejects: std::sync::atomic::AtomicBool::new(false),
            layout_attempts: Mutex::default(),
        });
        Self {
            dir,
            log,
            inner,
            inbox,
        }
    }

    fn module_path(&self, file: &str) -> PathBuf {
        self.dir.path().join("modules").join(file)
    }

    fn state_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("data/projections").join(name)
    }

    /// Writes a module file and hands its change to the registry.
    fn deploy(&self, file: &str, bytes: &[u8]) -> PathBuf {
        let path = self.module_path(file);
        std::fs::write(&path, bytes).unwrap();
        self.inner.handle(Command::Changed(path.clone()));
        path
    }

    /// Writes a sidecar and hands its change to the registry.
    fn sidecar(&self, module: &str, text: &str) {
        let path = self.module_path(module);
        std::fs::write(path.with_extension("toml"), text).unwrap();
        self.inner.handle(Command::SidecarChanged(path));
    }

    fn publish(&self, count: usize) {
        let records = (0..count)
            .map(|i| NewRecord {
                key: Some(format!("k{i}").into_bytes()),
                payload: Some(b"{}".to_vec()),
                headers: Vec::new(),
            })
            .collect();
        self.log.append("orders", records).unwrap();
    }

    /// Acts on the worker reports queued so far, as the controller would.
    fn pump(&self) {
        while let Ok(command) = self.inbox.try_recv() {
            self.inner.handle(command);
        }
    }

    /// Waits for `done`; with `pump`, acting on worker reports meanwhile.
    fn wait(&self, what: &str, pump: bool, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            if pump {
                self.pump();
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn serving(&self, name: &str) -> SharedProjection {
        self.inner.slot(name).and_then(|s| s.serving).unwrap()
    }

    fn building(&self, name: &str) -> Option<SharedProjection> {
        self.inner.slot(name).and_then(|s| s.building)
    }

    fn count(version: &SharedProjection) -> u64 {
        version
            .reader()
            .unwrap()
            .get(b"n")
            .unwrap()
            .map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()))
    }

    fn applied(version: &SharedProjection) -> u64 {
        version.reader().unwrap().events_applied().unwrap()
    }

    /// Events read past (applied or passed over by the error policy).
    fn position(version: &SharedProjection) -> u64 {
        let offsets = version.reader().unwrap().offsets().unwrap();
        offsets.iter().map(|(_, _, next)| next).sum()
    }

    fn rejected(&self) -> Vec<Rejected> {
        self.inner.rejected.read().unwrap().clone()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for slot in self.inner.slots.read().unwrap().values() {
            for version in slot.serving.iter().chain(slot.building.iter()) {
                version.stop_and_join();
            }
        }
        self.log.shutdown();
    }
}

fn status_label(version: &SharedProjection) -> &'static str {
    version.status().label()
}

#[test]
fn a_replay_refuses_to_drop_a_pending_upgrade_and_says_why() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(20);
    h.wait("v1 to apply", true, || {
        Harness::applied(&h.serving("c")) == 20
    });
    // v2 builds in the shadow; its reports are not acted on, so it stays
    // there.
    h.deploy("c.wasm", &counter("c", "2", 2, false));
    let upgrade = h.building("c").expect("v2 builds");
    for refused in [
        h.inner.replay("c"),
        h.inner.restore("c", &h.dir.path().join("any.snap")),
    ] {
        let error = refused.expect_err("the upgrade would be lost");
        assert!(
            error.contains(upgrade.module.short_hash()) && error.contains("c.wasm"),
            "names the build and its file: {error}"
        );
    }
    let still = h.building("c").expect("the upgrade goes on");
    assert_eq!(still.instance, upgrade.instance);
    // Once it swapped in, a replay is fine.
    h.wait("v2 to swap in", true, || {
        h.serving("c").module.hash == upgrade.module.hash
    });
    h.inner.replay("c").unwrap();
    assert!(h.building("c").is_some());
}

#[test]
fn an_abandoned_swap_restarts_the_old_version_with_its_own_settings() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(5);
    h.wait("v1 to apply", true, || {
        Harness::applied(&h.serving("c")) == 5
    });
    // The sidecar is edited for v2, which fails during its build.
    std::fs::write(
        h.module_path("c.toml"),
        "[limits]\nbatch_max_events = 3\nmax_key_bytes = 100\n",
    )
    .unwrap();
    h.deploy("c.wasm", &counter("c", "2", 2, true));
    let v2 = h.building("c").expect("v2 builds");
    h.wait("v2 to fail", false, || status_label(&v2) == "failed");
    // Its swap is attempted (a late caught-up report) and abandoned.
    h.inner.caught_up("c", &v2.module.hash, v2.instance);
    let old = h.serving("c");
    assert_eq!(old.module.descriptor.version, "1");
    let ran_with = WorkerConfig::default();
    assert_eq!(old.config.batch_max_events, ran_with.batch_max_events);
    assert_eq!(
        old.config.limits.max_key_bytes,
        ran_with.limits.max_key_bytes
    );
    h.publish(3);
    h.wait("v1 to go on reading its topic", true, || {
        Harness::applied(&h.serving("c")) == 8
    });
}

#[test]
fn a_new_version_of_the_building_state_version_goes_on_from_that_build() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(50);
    h.wait("v1 to apply", true, || {
        Harness::applied(&h.serving("c")) == 50
    });
    h.deploy("c.wasm", &counter("c", "2", 2, false));
    let v2 = h.building("c").expect("v2 builds");
    // Held in the shadow (no report is acted on) once it has read all.
    h.wait("v2 to build", false, || Harness::applied(&v2) == 50);
    h.deploy("c.wasm", &counter("c", "3", 2, false));
    let v3 = h.building("c").expect("v3 builds");
    assert_eq!(v3.module.descriptor.version, "3");
    match v3.role() {
        Role::Building { start_position, .. } => {
            assert_eq!(start_position, 50, "v3 starts where v2's build was");
        }
        Role::Serving => panic!("v3 must build in the shadow"),
    }
    assert!(
        Arc::ptr_eq(v3.store().unwrap(), v2.store().unwrap()),
        "one state file"
    );
    h.publish(10);
    h.wait("v3 to swap in", true, || {
        h.serving("c").module.descriptor.version == "3" && Harness::count(&h.serving("c")) == 60
    });
}

#[test]
fn a_module_rejected_at_start_keeps_its_projections_state() {
    let config = WorkerConfig {
        state_retention: Duration::ZERO,
        ..WorkerConfig::default()
    };
    let h = Harness::new(config);
    let file = h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(5);
    h.wait("v1 to apply", true, || {
        Harness::applied(&h.serving("c")) == 5
    });
    let state = h.serving("c").store().unwrap().path().to_owned();
    // A bad deploy, then a restart: the file no longer loads.
    h.inner.stop_name("c", &file, "the process stopped");
    h.inner.slots.write().unwrap().clear();
    std::fs::write(&file, b"not wasm").unwrap();
    h.inner.handle(Command::Changed(file.clone()));
    assert_eq!(h.rejected().len(), 1);
    h.inner.sweep();
    assert!(state.exists(), "a bad deploy must not delete state");
    // Fixed: the projection comes back from its state, without replay.
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    assert!(h.rejected().is_empty(), "{:?}", h.rejected());
    assert_eq!(Harness::count(&h.serving("c")), 5);
}

#[test]
fn a_removed_projection_is_forgotten_and_its_state_deleted_after_the_retention() {
    let config = WorkerConfig {
        state_retention: Duration::from_secs(1),
        ..WorkerConfig::default()
    };
    let h = Harness::new(config.clone());
    let file = h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(5);
    h.wait("v1 to apply", true, || {
        Harness::applied(&h.serving("c")) == 5
    });
    // A snapshot of it: deleted with its state (a removed projection's
    // snapshots were kept for ever).
    let serving = h.serving("c");
    let snapshot = crate::snapshot::write(
        h.inner.files.snapshots_dir(),
        crate::snapshot::ProjectionVersion {
            name: "c",
            hash: &serving.module.hash,
            state_version: 1,
        },
        &serving.reader().unwrap(),
        3,
    )
    .unwrap();
    assert!(snapshot.path.is_file());
    let hash = serving.module.hash.clone();
    let cache = h.dir.path().join("data/cache");
    let cached = |hash: &str| {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(hash))
    };
    assert!(cached(&hash), "its compiled code is cached");
    // Another projection, still serving: its compiled code stays.
    h.deploy("d.wasm", &counter("d", "1", 1, false));
    let other = h.serving("d").module.hash.clone();
    drop(serving);
    std::fs::remove_file(&file).unwrap();
    h.inner.handle(Command::Removed(file));
    assert_eq!(status_label(&h.serving("c")), "removed");
    // The running controller sweeps on its own, without any command.
    let (commands, inbox) = mpsc::channel();
    *h.inner.commands.lock().unwrap() = commands.clone();
    let controller = {
        let inner = h.inner.clone();
        std::thread::spawn(move || inner.run(&inbox))
    };
    let state_dir = h.state_dir("c");
    h.wait("the state to be deleted", false, || {
        std::fs::read_dir(&state_dir).unwrap().count() == 0
    });
    assert!(h.inner.slot("c").is_none(), "the projection is forgotten");
    let snapshots = h.inner.files.snapshots_dir().join("c");
    h.wait("its snapshots to be deleted", false, || !snapshots.exists());
    h.wait("its compiled code to be deleted", false, || !cached(&hash));
    assert!(
        cached(&other),
        "the serving projection's compiled code stays"
    );
    commands.send(Command::Shutdown).unwrap();
    controller.join().unwrap();
}

#[test]
fn a_file_that_now_provides_another_name_stops_the_old_one() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(5);
    h.wait("c to apply", true, || {
        Harness::applied(&h.serving("c")) == 5
    });
    h.deploy("c.wasm", &counter("d", "1", 1, false));
    assert_eq!(status_label(&h.serving("c")), "removed");
    h.wait("d to apply", true, || {
        Harness::applied(&h.serving("d")) == 5
    });
    // The same through the sidecar's name.
    h.sidecar("c.wasm", "name = \"e\"\n");
    assert_eq!(status_label(&h.serving("d")), "removed");
    h.wait("e to apply", true, || {
        Harness::applied(&h.serving("e")) == 5
    });
    // And back: d takes up its kept state.
    h.sidecar("c.wasm", "name = \"d\"\n");
    assert_eq!(status_label(&h.serving("e")), "removed");
    h.wait("d to run again", true, || {
        status_label(&h.serving("d")) == "running"
    });
    assert_eq!(Harness::count(&h.serving("d")), 5);
}

#[test]
fn sidecar_settings_apply_to_the_running_version_without_replay() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, true));
    h.publish(3);
    let halted = h.serving("c");
    h.wait("the halt", true, || status_label(&halted) == "failed");
    h.sidecar(
        "c.wasm",
        "error_policy = \"skip\"\n[limits]\nbatch_max_events = 2\n",
    );
    let running = h.serving("c");
    assert_ne!(running.instance, halted.instance);
    assert_eq!(running.config.error_policy, ErrorPolicy::Skip);
    assert_eq!(running.config.batch_max_events, 2);
    assert!(
        Arc::ptr_eq(running.store().unwrap(), halted.store().unwrap()),
        "no replay"
    );
    h.wait("the failed events to be skipped", true, || {
        Harness::position(&h.serving("c")) == 3
    });
    assert_eq!(status_label(&h.serving("c")), "running");
}

#[test]
fn a_sidecar_that_changes_the_topics_rebuilds_in_the_shadow() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    h.publish(4);
    h.wait("v1 to apply", true, || Harness::count(&h.serving("c")) == 4);
    h.log
        .append(
            "orders-eu",
            vec![NewRecord {
                key: None,
                payload: Some(b"{}".to_vec()),
                headers: Vec::new(),
            }],
        )
        .unwrap();
    let before = h.serving("c");
    h.sidecar("c.wasm", "[topics]\norders = \"orders-eu\"\n");
    let rebinding = h.building("c").expect("a rebuild in the shadow");
    assert_eq!(rebinding.topics[0].physical, "orders-eu");
    assert_eq!(
        h.serving("c").instance,
        before.instance,
        "v1 serves meanwhile"
    );
    h.wait("the rebound version to serve", true, || {
        h.serving("c").topics[0].physical == "orders-eu"
    });
    assert_eq!(Harness::count(&h.serving("c")), 1);
}

#[test]
fn an_invalid_sidecar_is_rejected_and_the_running_version_keeps_running() {
    let h = Harness::new(WorkerConfig::default());
    h.deploy("c.wasm", &counter("c", "1", 1, false));
    let before = h.serving("c");
    h.sidecar("c.wasm", "error_policy = \"sometimes\"\n");
    let rejected = h.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].file.ends_with("c.toml"), "{rejected:?}");
    assert!(rejected[0].error.contains("sometimes"), "{rejected:?}");
    assert_eq!(h.serving("c").instance, before.instance);
    h.publish(2);
    h.wait("v1 to go on", true, || Harness::count(&h.serving("c")) == 2);
    h.sidecar("c.wasm", "error_policy = \"skip\"\n");
    assert!(
        h.rejected().is_empty(),
        "a fixed sidecar clears its rejection"
    );
}
