//! Tracing setup: human or JSON lines on stderr, filtered by `RUST_LOG`
//! (default `info`, with openraft's chatty internals at `warn`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // A full directive list (it has a comma) is used as given.
        if default_level.contains(',') {
            return EnvFilter::new(default_level);
        }
        EnvFilter::new(format!(
            "{default_level},openraft={},sled=warn,hyper=warn",
            if default_level == "error" {
                "error"
            } else {
                "warn"
            }
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
