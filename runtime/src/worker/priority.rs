//! Folding threads yield the CPU to the threads that answer queries: a key
//! lookup should not wait for a core behind a projection replaying at full
//! speed (on Linux, a nice value is per thread).

/// Lowers the calling thread's CPU priority to `nice` (0 = unchanged, up to
/// 19). Best effort: a refusal is logged and the thread runs on as it was.
#[allow(unsafe_code)]
pub(super) fn lower_this_thread(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: two syscalls about the calling thread; no memory is
        // passed or shared.
        let result = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice.min(19))
        };
        if result != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower the worker thread's priority"
            );
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_calling_thread_gets_the_nice_value_and_others_keep_theirs() {
        let nice_of = |stat: &str| -> i64 {
            // Field 19 of /proc/.../stat; the text after "(comm) " starts at 3.
            let fields: Vec<&str> = stat
                .rsplit_once(") ")
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            fields[16].parse().unwrap()
        };
        let before = nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
        let lowered = std::thread::spawn(move || {
            super::lower_this_thread(before as i32 + 5);
            nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 5).min(19));
        let after = nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
        assert_eq!(after, before, "only the calling thread is lowered");
    }
}
