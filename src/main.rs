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
    preflight,
    server::Server,
    telemetry, tls,
    vfs::Stores,
};
use rand::{distributions::Alphanumeric, Rng};

#[derive(Parser)]
#[command(
    name = "ftps-s3",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FTPS_BUILD_COMMIT"), ")"),
    about = "FTPS server (explicit and implicit) in front of S3"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server. Without --config and without FTPS_S3_* variables (FTPS_S3_LOG__* aside):
    /// the development default (127.0.0.1:2121 explicit, :9990 implicit, files under
    /// ./data/files, user demo).
    Serve {
        /// TOML config file (every key: examples/config.toml); FTPS_S3_* variables override it
        /// (FTPS_S3_S3__BUCKET=x sets s3.bucket).
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a config file, its certificate, its users file, that its listeners can be bound and
    /// that every S3 bucket and home answers; exit 1 naming what is wrong and how to fix it.
    CheckConfig {
        /// TOML config file to check (FTPS_S3_* variables apply on top, as for serve).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Skip the checks that need this machine's network: S3 requests and binding the
        /// listener ports (e.g. to check a config on a build machine).
        #[arg(long)]
        offline: bool,
    },
    /// Print the argon2id hash of a password for the users file: asked for twice on a terminal,
    /// else read from stdin (printf '%s' 'pw' | ftps-s3 hash-password).
    HashPassword,
}

fn main() -> ExitCode {
    ftps_s3::memory::tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Serve { config } => serve(config),
        Cmd::CheckConfig { config, offline } => check_config(&config, offline),
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

fn check_config(path: &Path, offline: bool) -> anyhow::Result<()> {
    let config = Config::load(Some(path))?;
    tls::TlsAcceptors::load(&config.tls)?;
    println!("client certificates: {}", config.tls.client_auth.name());
    println!(
        "certificate: {}",
        preflight::certificate_summary(&config.tls.cert_file)
    );
    let mut users = UserStore::default();
    if config.storage.backend == Backend::S3 || config.auth.users_file.exists() {
        users = UserStore::load(&config.auth.users_file)?;
        println!(
            "users: {} in {}",
            users.len(),
            config.auth.users_file.display()
        );
        for w in users.warnings() {
            println!("warning: {w}");
        }
        if config.tls.client_auth == ClientAuth::None {
            for name in users.certificate_users() {
                println!(
                    "warning: user {name} has a certificate_cn but tls.client_auth = \"none\": it cannot log in"
                );
            }
        }
    }
    // Reads events.webhook_secret_file, as serve does at start.
    ftps_s3::events::from_config(&config.events)?;
    match config
        .events
        .webhook_url
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        Some(url) => println!("events: signed POST to {url}"),
        None => println!("events: off"),
    }
    // Reads auth.http_secret_file, as serve does at start.
    ftps_s3::auth::HttpIdentity::from_config(&config.auth)?;
    match config.auth.http_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => println!("external identity: users not in the file are asked of {url}"),
        None => println!("external identity: off"),
    }
    if offline {
        println!("offline: listener ports and S3 not checked");
        println!("{}: OK", path.display());
        return Ok(());
    }
    let mut problems = preflight::ports::check(&config);
    for p in &problems {
        println!("error: {p}");
    }
    if config.storage.backend == Backend::S3 {
        let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
        for report in runtime.block_on(preflight::s3::probe(&config, &users)) {
            match &report.problem {
                None => println!("{report}"),
                Some(_) => {
                    println!("error: {report}");
                    problems.push(report.to_string());
                }
            }
        }
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "{}: {} problem(s), listed above",
            path.display(),
            problems.len()
        );
    }
    println!("{}: OK", path.display());
    Ok(())
}

fn hash_password() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let again = prompt_hidden("Again: ")?;
        if first != again {
            anyhow::bail!("the two passwords differ");
        }
        first
    } else {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading the password from stdin")?;
        // A trailing newline (from `echo`) is not part of the password.
        input
            .strip_suffix('\n')
            .map(|p| p.strip_suffix('\r').unwrap_or(p))
            .unwrap_or(&input)
            .to_string()
    };
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    println!(
        "{}",
        auth::hash_password(&password).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

/// Reads one line from the terminal on stdin without echoing it.
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    let fd = libc::STDIN_FILENO;
    // SAFETY: tcgetattr/tcsetattr on stdin, a terminal, with a zeroed termios they fill in.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let echo_off = unsafe { libc::tcgetattr(fd, &mut saved) } == 0 && {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0 }
    };
    // Only now: a fast typist (or script) answering the prompt must not be echoed.
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        // SAFETY: as above, restoring what tcgetattr read.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
        eprintln!();
    }
    read.context("reading the password from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `FTPS_S3_*` variables that configure the server. `FTPS_S3_LOG__*` are not among them: a log
/// level applies to the development default too and does not change the mode.
fn configuring_variables() -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| {
            k.starts_with("FTPS_S3_") && !k.to_ascii_uppercase().starts_with("FTPS_S3_LOG__")
        })
        .collect()
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let telemetry = runtime.block_on(async move {
        let variables = configuring_variables();
        let (server, telemetry) = if config_path.is_none() && variables.is_empty() {
            development_server().await?
        } else {
            let config =
                Config::load(config_path.as_deref()).with_context(|| match &config_path {
                    Some(path) => format!("loading {}", path.display()),
                    None => format!(
                        "no --config, but {} set: configuring from the environment, not the \
                         development default",
                        variables.join(", ")
                    ),
                })?;
            let telemetry = telemetry::init(&config.log, &config.telemetry)?;
            let users = UserStore::load(&config.auth.users_file)?;
            tracing::info!("starting: {}", preflight::summary(&config, &users));
            let probe = (config.storage.backend == Backend::S3).then(|| config.clone());
            let server = Server::bind(config).await?;
            if let Some(config) = probe {
                // Not awaited: S3 may be down now and back later; the server serves meanwhile.
                // On the server's tracker; given up when shutdown starts.
                let stopping = server.background().stopping().clone();
                server.background().spawn(async move {
                    let reports = tokio::select! {
                        r = preflight::s3::probe(&config, &users) => r,
                        _ = stopping.cancelled() => return,
                    };
                    for report in reports {
                        match &report.problem {
                            None => tracing::info!("{report}"),
                            Some(_) => tracing::error!("{report}"),
                        }
                    }
                });
            }
            (server, telemetry)
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

/// Where the development default keeps the demo user's password, next to its certificate.
const DEV_PASSWORD_FILE: &str = "./data/demo-password";

/// The no-config first try: local storage, a self-signed certificate and a demo password, both
/// made once under `./data` and reused. `FTPS_S3_LOG__*` apply.
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
    config.log = Config::log_from_env(config.log)?;
    config.validate()?;
    let telemetry = telemetry::init(&config.log, &config.telemetry)?;
    tracing::warn!(
        "no configuration given: running the DEVELOPMENT default (local storage in ./data/files, \
         self-signed certificate in ./data/tls). Do not expose this to a network. --config FILE \
         or any FTPS_S3_* variable other than FTPS_S3_LOG__* leaves it."
    );
    let password = dev_password(Path::new(DEV_PASSWORD_FILE))?;
    let demo =
        User::new("demo", &password, "demo/", Permissions::ALL).map_err(anyhow::Error::msg)?;
    let users = UserStore::from_users(vec![demo]);
    let tls = tls::TlsAcceptors::load(&config.tls)?;
    let stores = Stores::from_config(&config).await?;
    tracing::info!("starting: {}", preflight::summary(&config, &users));
    let server = Server::bind_with(config, tls, users, stores).await?;
    println!(
        "ftps-s3 development server\n  explicit FTPS: ftp://127.0.0.1:2121  (AUTH TLS)\n  implicit FTPS: ftps://127.0.0.1:9990\n  user: demo  password: {password}  (kept in {DEV_PASSWORD_FILE})\n  try: curl -k --ssl-reqd -u demo:{password} ftp://127.0.0.1:2121/"
    );
    Ok((server, telemetry))
}

/// The demo password stored in `path`, made (16 random letters and digits, mode 0600) on first
/// use, so that a restart does not change it.
fn dev_password(path: &Path) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        if !text.is_empty() {
            return Ok(text.to_string());
        }
    }
    let password: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{password}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(password)
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
