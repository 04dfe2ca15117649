//! [`SteppedClock`]: a server's wall clock under libfaketime, stepped forward or back while it
//! runs, as NTP or a failover to another host steps it; its monotonic clock stays untouched.

use std::{
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicI64, Ordering},
};

/// Debian's libfaketime for threaded programs (package faketime); `$LIB` is the dynamic
/// loader's own library folder.
pub const FAKETIME_LIBRARY: &str = "/usr/$LIB/faketime/libfaketimeMT.so.1";

/// Whether Debian's libfaketime is installed, in any of the loader's library folders.
pub fn faketime_installed() -> bool {
    let folders = std::fs::read_dir("/usr/lib").into_iter().flatten().flatten();
    folders.into_iter().any(|folder| folder.path().join("faketime/libfaketimeMT.so.1").is_file())
}

/// The offset of the processes started through [`preload`](Self::preload), in a file they read
/// at every reading of the time.
#[derive(Debug)]
pub struct SteppedClock {
    file: PathBuf,
    offset: AtomicI64,
}

impl SteppedClock {
    /// A clock on time, its offset kept in `file` (readable by the server's user).
    pub fn new(file: PathBuf) -> Self {
        assert!(
            faketime_installed(),
            "a stepped clock needs libfaketime ({FAKETIME_LIBRARY}); install Debian's faketime"
        );
        let clock = Self { file, offset: AtomicI64::new(0) };
        clock.write(0);
        clock
    }

    /// Runs `command` on this clock.
    pub fn preload(&self, command: &mut Command) {
        command
            .env("LD_PRELOAD", FAKETIME_LIBRARY)
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("DONT_FAKE_MONOTONIC", "1");
    }

    /// Steps the clock by `seconds`, forward or (negative) back; returns its offset now.
    pub fn step(&self, seconds: i64) -> i64 {
        let offset = self.offset.fetch_add(seconds, Ordering::SeqCst) + seconds;
        self.write(offset);
        offset
    }

    /// The offset from the host's clock, in seconds.
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }

    fn write(&self, offset: i64) {
        // Written whole, then renamed: a reader never sees half a line.
        let partial = self.file.with_extension("partial");
        std::fs::write(&partial, format!("{offset:+}\n")).unwrap();
        std::fs::rename(&partial, &self.file).unwrap();
    }
}
