//! The `stopgate` binary: parse the command line, load the config, run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stopgate::app::{shutdown_signal, App};
use stopgate::config::{demo_tenant, Config, Settings};

#[derive(Parser)]
#[command(
    version,
    about = "SMS gateway middleware: opt-out footers, STOP handling, suppression"
)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig => check_config(cli.config),
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
    stopgate::telemetry::init(&settings.config.log);
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
