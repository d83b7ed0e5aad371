//! Routes the `log` crate to the host's log without the SDK's panicking logger: a host
//! that refuses a log line loses the line, not the VM. The level filter is the host's own
//! at start, so disabled levels cost nothing in the guest.

use crate::host;
use proxy_wasm::types::LogLevel;

struct HostLogger;
static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
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

/// Installs the logger (idempotent) and a panic hook that logs the panic message at
/// critical level before the VM aborts (a panic is a bug; this makes it visible).
pub fn init() {
    if log::set_logger(&LOGGER).is_ok() {
        std::panic::set_hook(Box::new(|info| {
            let _ = host::log(LogLevel::Critical, &info.to_string());
        }));
    }
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
