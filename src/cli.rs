//! The command line: `serve` (the default), `check-config` and the
//! operator commands. Each command loads the config the same way and exits
//! with 0 (done), 1 (failed while running) or 2 (bad config or arguments).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::app::{shutdown_signal, App};
use crate::config::{demo_tenant, Config, Settings};
use crate::store::{self, Store, StoreError};
use crate::suppressions::{export_csv, import_csv};

#[derive(Parser)]
#[command(
    version,
    about = "SMS gateway middleware: opt-out footers, STOP handling, suppression"
)]
pub struct Cli {
    /// Config file. Default: ./stopgate.toml if it exists, else built-in demo defaults.
    #[arg(long, global = true, env = "STOPGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Load and validate the config and the country rules, then exit.
    CheckConfig,
    /// Import or export a tenant's suppression list (CSV). Opens the store
    /// directly, so stop the gateway first (or use the HTTP API while it runs).
    #[command(subcommand)]
    Suppressions(SuppressionsCommand),
}

#[derive(Subcommand)]
enum SuppressionsCommand {
    /// Import a CSV with a header row and a `number` column (`-` for stdin).
    Import {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
    },
    /// Export the suppressed numbers as CSV (to stdout, or --output).
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Runs the command line.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Suppressions(cmd) => suppressions(cli.config, cmd),
    }
}

/// The config file to use, and whether we run the zero-config demo.
fn resolve(path: Option<PathBuf>) -> (Option<PathBuf>, bool) {
    match path {
        Some(p) => (Some(p), false),
        None if Path::new("stopgate.toml").exists() => {
            (Some(PathBuf::from("stopgate.toml")), false)
        }
        None => (None, true),
    }
}

fn load(path: Option<PathBuf>) -> Result<(Settings, Option<String>), String> {
    let (file, demo) = resolve(path);
    let mut config = Config::load(file.as_deref()).map_err(|e| format!("config error: {e}"))?;
    let mut demo_key = None;
    if demo && config.tenants.is_empty() {
        let (tenant, key) =
            demo_tenant(&config.storage.path).map_err(|e| format!("demo setup: {e}"))?;
        config.tenants.push(tenant);
        for (c, code) in [
            ("FR", "36111"),
            ("GB", "60777"),
            ("BE", "3669"),
            ("NL", "4411"),
            ("DE", "44744"),
        ] {
            config
                .shortcodes
                .entry(c.into())
                .or_insert_with(|| code.into());
        }
        demo_key = Some(key);
    }
    let settings = Settings::from_config(config).map_err(|e| format!("config error: {e}"))?;
    Ok((settings, demo_key))
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match load(path) {
        Ok((s, _)) => {
            println!(
                "config ok: {} tenant(s), short codes for {:?}",
                s.tenants.len(),
                s.shortcodes.keys().collect::<Vec<_>>()
            );
            println!("country rules: {:?} + default", s.rules.countries());
            for w in &s.warnings {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let (settings, demo_key) = match load(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&settings.config.log);
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    let result = runtime.block_on(async move {
        for w in &settings.warnings {
            tracing::warn!("{w}");
        }
        let app = App::build(settings).await?;
        tracing::info!(api = %app.api_addr(), public = %app.public_addr(), "stopgate listening");
        if let Some(key) = demo_key {
            // Printed, not logged: this is the zero-config demo's own key.
            println!(
                "\nstopgate demo: no config file, so a demo tenant is set up.\n  API:    http://{}\n  public: http://{}\n  demo tenant API key: {key}\n  (also in data/demo-api-key)\n",
                app.api_addr(),
                app.public_addr()
            );
        }
        app.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stopgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn suppressions(path: Option<PathBuf>, cmd: SuppressionsCommand) -> ExitCode {
    let (settings, _) = match load(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let tenant_arg = match &cmd {
        SuppressionsCommand::Import { tenant, .. } | SuppressionsCommand::Export { tenant, .. } => {
            tenant.clone()
        }
    };
    let Some(tenant) = settings
        .tenants
        .iter()
        .find(|t| t.id.as_str() == tenant_arg)
    else {
        eprintln!("no tenant {tenant_arg:?} in the config");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    let storage = &settings.config.storage;
    let store: Arc<dyn Store> = match runtime.block_on(store::open(storage)) {
        Ok(s) => s,
        Err(e @ StoreError::InUse(_)) => {
            eprintln!("{e}; stop it, or use the HTTP API while it runs");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("cannot open the store ({}): {e}", storage.describe());
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async {
        match cmd {
            SuppressionsCommand::Import { file, .. } => {
                let report = if file.as_os_str() == "-" {
                    import_csv(store.as_ref(), &tenant.id, tokio::io::stdin()).await?
                } else {
                    import_csv(
                        store.as_ref(),
                        &tenant.id,
                        tokio::fs::File::open(&file).await?,
                    )
                    .await?
                };
                println!(
                    "rows: {}, imported: {}, unchanged: {}, failed: {}",
                    report.rows, report.imported, report.unchanged, report.failed
                );
                for e in &report.errors {
                    println!("line {}: {}", e.line, e.message);
                }
                if report.failed as usize > report.errors.len() {
                    println!(
                        "... and {} more bad rows",
                        report.failed as usize - report.errors.len()
                    );
                }
            }
            SuppressionsCommand::Export { output, .. } => {
                let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match output {
                    Some(p) => Box::new(tokio::fs::File::create(p).await?),
                    None => Box::new(tokio::io::stdout()),
                };
                let mut chunks = std::pin::pin!(export_csv(store.clone(), tenant.id.clone()));
                while let Some(chunk) = chunks.next().await {
                    out.write_all(&chunk?).await?;
                }
                out.flush().await?;
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stopgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}
