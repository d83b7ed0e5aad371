//! Routes the `log` crate to the host's log without the SDK's panicking logger: a host
//! that refuses a log line loses the line, not the VM. The level filter is the host's own
//! (read when the plugin is configured), so disabled levels cost nothing in the guest.

use crate::host;
use crate::host::LogLevel;

struct HostLogger;
static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        // In a test binary the logger is process-wide, but only emulator threads running a
        // native filter have a host to log to (wasmtime's own threads log too).
        #[cfg(feature = "testing")]
        if !crate::testing::native_guest() {
            return false;
        }
        metadata.level() <= log::max_level()
    }
    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        let _ = host::log(level, &record.args().to_string());
    }
    fn flush(&self) {}
}

/// Installs the logger (idempotent) at level info. Makes no host call: Envoy refuses host
/// calls during `_initialize`, where this runs; [`follow_host_level`] runs later.
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Adopts the host's current log level, so disabled levels cost nothing in the guest.
/// Called by the root context in `on_configure`.
pub fn follow_host_level() {
    let filter = match host::log_level().unwrap_or(LogLevel::Info) {
        LogLevel::Trace => log::LevelFilter::Trace,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Critical => log::LevelFilter::Off,
    };
    log::set_max_level(filter);
}
