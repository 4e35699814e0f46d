//! The server binary as a child process, with an environment the test decides.

use tokio::process::Command;

/// `ftps-s3` with none of the caller's variables that would change what it does: config
/// overrides (`FTPS_S3_*`), AWS credentials and settings (`AWS_*`), OpenTelemetry export
/// (`OTEL_*`) and log filters (`RUST_LOG`). Tests set what they need on the returned command.
pub fn server_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ftps-s3"));
    for (k, _) in std::env::vars() {
        if k.starts_with("FTPS_S3_")
            || k.starts_with("AWS_")
            || k.starts_with("OTEL_")
            || k == "RUST_LOG"
        {
            c.env_remove(k);
        }
    }
    c
}
