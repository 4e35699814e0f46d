//! The `ftps-s3` command: `serve`, `check-config`, `hash-password`.

use std::{
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use ftps_s3::{
    auth::{self, Permissions, User, UserStore},
    config::{Backend, ClientAuth, Config},
    server::Server,
    telemetry, tls,
    vfs::Stores,
};
use rand::{distributions::Alphanumeric, Rng};

#[derive(Parser)]
#[command(
    name = "ftps-s3",
    version,
    about = "FTPS server (explicit and implicit) in front of S3"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server. Without --config and without FTPS_S3_* variables: a local development
    /// server (127.0.0.1:2121 explicit, :9990 implicit, files under ./data/files).
    Serve {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file, its certificate and its users file; exit 1 naming what is wrong.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Read a password from stdin and print its argon2id hash for the users file.
    HashPassword,
}

fn main() -> ExitCode {
    ftps_s3::memory::tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Serve { config } => serve(config),
        Cmd::CheckConfig { config } => check_config(&config),
        Cmd::HashPassword => hash_password(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, skipping causes the message already quotes (our error types put
/// the cause in their message, so a plain `{:#}` would say it twice).
fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn check_config(path: &Path) -> anyhow::Result<()> {
    let config = Config::load(Some(path))?;
    tls::TlsAcceptors::load(&config.tls)?;
    println!("client certificates: {}", config.tls.client_auth.name());
    if config.storage.backend == Backend::S3 || config.auth.users_file.exists() {
        let users = UserStore::load(&config.auth.users_file)?;
        println!(
            "users: {} in {}",
            users.len(),
            config.auth.users_file.display()
        );
        if config.tls.client_auth == ClientAuth::None {
            for name in users.certificate_users() {
                println!(
                    "warning: user {name} has a certificate_cn but tls.client_auth = \"none\": it cannot log in"
                );
            }
        }
    }
    println!("{}: OK", path.display());
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    // A trailing newline (from `echo` or a terminal) is not part of the password.
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    println!(
        "{}",
        auth::hash_password(password).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

/// True when nothing configures the server: the development default applies.
fn unconfigured(config: &Option<PathBuf>) -> bool {
    config.is_none() && !std::env::vars().any(|(k, _)| k.starts_with("FTPS_S3_"))
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let telemetry = runtime.block_on(async move {
        let (server, telemetry) = if unconfigured(&config_path) {
            development_server().await?
        } else {
            let config = Config::load(config_path.as_deref())?;
            let telemetry = telemetry::init(&config.log, &config.telemetry)?;
            (Server::bind(config).await?, telemetry)
        };
        let running = server.spawn();
        wait_for_signal().await;
        tracing::info!("shutting down: no new sessions; transfers in flight may finish");
        running.shutdown().await;
        anyhow::Ok(telemetry)
    })?;
    // Outside the runtime: the last OTLP export blocks until it is sent (or times out).
    drop(runtime);
    telemetry.shutdown();
    Ok(())
}

/// The no-config first try: local storage, a self-signed certificate made once, one user `demo`
/// with a fresh password printed at start.
async fn development_server() -> anyhow::Result<(Server, telemetry::TelemetryGuard)> {
    let mut config = Config::default();
    config.listeners.explicit = Some(SocketAddr::from(([127, 0, 0, 1], 2121)));
    config.listeners.implicit = Some(SocketAddr::from(([127, 0, 0, 1], 9990)));
    config.storage.backend = Backend::Local;
    config.storage.local_root = PathBuf::from("./data/files");
    config.auth.failure_delay_ms = 500;
    let (cert, key) = tls::ensure_self_signed(Path::new("./data/tls"))?;
    config.tls.cert_file = cert;
    config.tls.key_file = key;
    config.validate()?;
    let telemetry = telemetry::init(&config.log, &config.telemetry)?;
    tracing::warn!(
        "no configuration given: running the DEVELOPMENT default (local storage in ./data/files, \
         self-signed certificate in ./data/tls). Do not expose this to a network."
    );
    let password: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let demo =
        User::new("demo", &password, "demo/", Permissions::ALL).map_err(anyhow::Error::msg)?;
    let users = UserStore::from_users(vec![demo]);
    let tls = tls::TlsAcceptors::load(&config.tls)?;
    let stores = Stores::from_config(&config).await?;
    let server = Server::bind_with(config, tls, users, stores).await?;
    println!(
        "ftps-s3 development server\n  explicit FTPS: ftp://127.0.0.1:2121  (AUTH TLS)\n  implicit FTPS: ftps://127.0.0.1:9990\n  user: demo  password: {password}\n  try: curl -k --ssl-reqd -u demo:{password} ftp://127.0.0.1:2121/"
    );
    Ok((server, telemetry))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
