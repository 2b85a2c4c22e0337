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
use crate::config::{
    demo_tenant, Config, LogConfig, RuntimeMode, Settings, StorageConfig, StorageKind,
};
use crate::progress;
use crate::store::{self, PgStore, SledStore, Store, StoreError};
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
    /// Apply the database schema migrations this binary carries, then exit
    /// (storage.kind = "postgres"; the gateway also applies them at startup).
    Migrate,
    /// Operations on the store as a whole.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy an embedded (sled) store into an empty PostgreSQL database, then
    /// verify the counts of every kind of record. Stop the gateway first.
    Copy {
        /// The sled store's directory (storage.path).
        #[arg(long)]
        from: PathBuf,
        /// The target database: postgres://user:password@host:5432/db. Better
        /// from the environment, so the password is not on the command line.
        #[arg(long, env = "STOPGATE_STORAGE__URL", hide_env_values = true)]
        to: String,
    },
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
        Command::Migrate => migrate(cli.config),
        Command::Store(StoreCommand::Copy { from, to }) => copy(&from, to),
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
            println!("storage: {}", s.config.storage.describe());
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
    // Per core, this thread is core 0 and the app starts the others.
    let runtime = match settings.config.server.runtime {
        RuntimeMode::MultiThread => tokio::runtime::Runtime::new(),
        RuntimeMode::PerCore => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("start the tokio runtime");
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
    crate::telemetry::init(&settings.config.log);
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
                    let bar = progress::bytes(None, "importing");
                    let input =
                        progress::Counted::new(tokio::io::stdin(), bar.clone(), "importing");
                    let report = import_csv(store.as_ref(), &tenant.id, input).await;
                    bar.finish_and_clear();
                    report?
                } else {
                    let input = tokio::fs::File::open(&file).await?;
                    let size = input.metadata().await.ok().map(|m| m.len());
                    let bar = progress::bytes(size, "importing");
                    let input = progress::Counted::new(input, bar.clone(), "importing");
                    let report = import_csv(store.as_ref(), &tenant.id, input).await;
                    bar.finish_and_clear();
                    report?
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
                let bar = progress::open_ended("exporting");
                let mut chunks = std::pin::pin!(export_csv(store.clone(), tenant.id.clone()));
                while let Some(chunk) = chunks.next().await {
                    let chunk = chunk?;
                    bar.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
                    out.write_all(&chunk).await?;
                }
                out.flush().await?;
                bar.finish_and_clear();
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

fn migrate(path: Option<PathBuf>) -> ExitCode {
    let (settings, _) = match load(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let storage = &settings.config.storage;
    if storage.kind != StorageKind::Postgres {
        println!("storage.kind = \"sled\": the embedded store has no schema to migrate");
        return ExitCode::SUCCESS;
    }
    crate::telemetry::init(&settings.config.log);
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    match runtime.block_on(PgStore::migrate(storage)) {
        Ok(report) => {
            if report.applied.is_empty() {
                println!(
                    "{}: schema at version {}, nothing to apply",
                    storage.describe(),
                    report.current
                );
            } else {
                println!(
                    "{}: applied {:?}, schema at version {}",
                    storage.describe(),
                    report.applied,
                    report.current
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrating {}: {e}", storage.describe());
            ExitCode::FAILURE
        }
    }
}

/// `store copy`: needs no config file, only the two stores.
fn copy(from: &Path, to: String) -> ExitCode {
    crate::telemetry::init(&LogConfig::default());
    let target = StorageConfig {
        kind: StorageKind::Postgres,
        url: crate::config::Secret(to),
        pool_size: 2,
        ..StorageConfig::default()
    };
    if let Err(e) = target.pg_config() {
        eprintln!("--to: {}", e.message);
        return ExitCode::from(2);
    }
    if !from.join("db").exists() {
        eprintln!(
            "--from: {} is not a sled store (no {}/db)",
            from.display(),
            from.display()
        );
        return ExitCode::from(2);
    }
    let source = match SledStore::open(from, StorageConfig::default().cache_mb) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    let result = runtime.block_on(async {
        let pg = PgStore::open(&target).await?;
        let bar = progress::rows(0, "copying");
        let report = store::copy::copy(&source, &pg, &bar).await;
        bar.finish_and_clear();
        report
    });
    match result {
        Ok(report) => {
            println!("copied {} to {}", from.display(), target.describe());
            print!("{report}");
            if report.matches() {
                ExitCode::SUCCESS
            } else {
                eprintln!("the counts differ: the copy is incomplete");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("copying to {}: {e}", target.describe());
            ExitCode::FAILURE
        }
    }
}
