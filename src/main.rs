//! The `dns64d` binary: CLI, logging, signals. Everything else is the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use dns64d::app::{Server, Stop};
use dns64d::config::{Config, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "dns64d",
    version,
    about = "DNS64 filtering proxy: IPv6-only clients only ever see AAAA answers that route through the NAT64"
)]
struct Cli {
    /// Config file (TOML). Without it, the embedded loopback default is used.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Run,
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// The file to check (defaults to --config, else the embedded default).
        file: Option<PathBuf>,
        /// Explain which rules apply to this query name instead of printing the config.
        #[arg(long, value_name = "NAME")]
        explain: Option<String>,
    },
    /// Show what a pod's glibc and musl will do with a name (RFC 6724 order, NAT64 or not).
    Doctor(dns64d::doctor::DoctorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig { file, explain } => check_config(file.or(cli.config), explain),
        Command::Run => run(cli.config),
        Command::Doctor(args) => dns64d::doctor::run(args),
    }
}

fn check_config(path: Option<PathBuf>, explain: Option<String>) -> ExitCode {
    match Config::load(path.as_deref()) {
        Ok(cfg) => match explain {
            None => {
                print!("{}", cfg.to_toml());
                ExitCode::SUCCESS
            }
            Some(name) => match dns64d::policy::explain(&cfg, &name) {
                Ok(text) => {
                    print!("{text}{}", dns64d::upstream::explain(&cfg, &name));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dns64d: --explain {name:?}: {e}");
                    ExitCode::FAILURE
                }
            },
        },
        Err(e) => {
            eprintln!("dns64d: config error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let cfg = match Config::load(path.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dns64d: config error: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&cfg);
    // The main thread is worker 0 and runs the control path; `server.workers`
    // adds threads of their own (dns64d::worker). Current-thread runtimes
    // spare every spawn and wake-up the cross-thread bookkeeping of tokio's
    // multi-thread one (~15% of the CPU per forwarded query).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dns64d: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(cfg, path))
}

async fn serve(cfg: Config, path: Option<PathBuf>) -> ExitCode {
    if cfg.dns64.wkp_maps_private_space() {
        if cfg.dns64.strict_rfc6052 {
            tracing::info!(
                "strict_rfc6052: RFC 1918 and RFC 6598 addresses are not synthesized under 64:ff9b::/96"
            );
        } else {
            tracing::warn!(
                "64:ff9b::/96 is configured and dns64.mapped includes private IPv4 space: RFC 6052 §3.1 forbids this, \
                 cloud NAT64 gateways accept it; set dns64.strict_rfc6052 = true to refuse"
            );
        }
    }
    let unserved = cfg.ipv4_listeners_without_dns64();
    if !unserved.is_empty() {
        tracing::warn!(
            listen = ?unserved,
            "IPv4 listen addresses but dns64.clients lists no IPv4 range: IPv4 clients get plain \
             forwarding, with A records and no synthesis; add an IPv4 range (e.g. \"0.0.0.0/0\") \
             to dns64.clients if they should get DNS64"
        );
    }
    let summary = format!(
        "listen={:?} upstreams={:?} zones=[{}] prefixes=[{}] filter.a={:?}",
        cfg.server.listen,
        cfg.upstream.servers,
        cfg.upstream
            .zones
            .iter()
            .map(|z| format!("{} -> {}", z.suffix, z.server_names().join(" ")))
            .collect::<Vec<_>>()
            .join(", "),
        cfg.dns64.prefixes.names().join(", "),
        cfg.filter.a
    );
    let server = match Server::bind(cfg).await {
        Ok(s) => s.with_config_path(path),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("dns64d: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "dns64d serving: {summary}"
    );
    if let Some(addr) = server.metrics_addr() {
        tracing::info!(%addr, "metrics on /metrics, probes on /health and /ready");
    }
    let stop = Stop::new();
    let signals = stop.clone();
    let handle = server.handle();
    // Installed before serving starts: a query answered by another worker
    // thread proves the process is up, and a SIGHUP sent then must reload,
    // not take the default action (terminate).
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    // Errors are logged by reload; the old config keeps serving.
                    let _ = handle.reload();
                    continue;
                }
            }
            if signals.graceful.is_cancelled() {
                // The operator (or the kubelet's kill) does not want to wait.
                tracing::warn!("second SIGTERM/SIGINT: stopping at once");
                signals.now.cancel();
                return;
            }
            tracing::info!(
                "shutting down: serving for server.shutdown_grace, then draining in-flight queries"
            );
            signals.graceful.cancel();
        }
    });
    server.run_until(stop).await;
    ExitCode::SUCCESS
}
