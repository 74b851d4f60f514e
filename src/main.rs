//! The `dropfolder` command: parse the command line, set up tracing, and hand over to a
//! command. Exit codes: 0 ran (customer file errors are results), 1 something could not be
//! done, 2 bad config or usage.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dropfolder",
    version,
    about = "Imports the CSV files customers drop into S3"
)]
struct Cli {
    /// The config file, or a directory whose `*.toml` files are read as one config.
    #[arg(long, short, global = true, env = "DROPFOLDER_CONFIG", default_value = dropfolder::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Log lines as human-readable text or as JSON objects (on stderr).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check local files offline and print the status.txt each would get.
    Validate {
        /// The integration whose rules apply (optional when there is only one).
        #[arg(long, short)]
        integration: Option<String>,
        /// Files to check; `-` reads standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the dialect and the `date_format` that would read each file, instead of
        /// checking it (no config needed).
        #[arg(long, conflicts_with = "integration")]
        suggest: bool,
    },
    /// Check the config, then reach everything a run needs (databases, hosts, buckets).
    Check {
        /// Contact nothing: the config alone (for CI without network).
        #[arg(long)]
        offline: bool,
        /// Only this integration's bucket and callback (the config is still checked whole):
        /// to see whether a customer has set up their role.
        integration: Option<String>,
    },
    /// Print what a customer must set up for an integration: the role's permissions and
    /// trust policies, the CloudFormation parameters, and an external ID when it has none.
    Onboard {
        /// The integration, as named in the config.
        integration: String,
        /// The operator's principal the customer's role trusts (the role or user dropfolder
        /// runs as). Default: asked of STS.
        #[arg(long, env = "DROPFOLDER_PRINCIPAL_ARN")]
        principal: Option<String>,
    },
    /// Scan every integration once, import what is ready, then exit.
    Run,
    /// Load a local file (or `-` for stdin) straight into the sink.
    Import {
        /// The integration whose rules and records apply (optional when there is only one).
        #[arg(long, short)]
        integration: Option<String>,
        /// The gzipped CSV file, or `-`.
        file: PathBuf,
        /// Also write every error of a rejected file to this CSV file.
        #[arg(long)]
        errors_csv: Option<PathBuf>,
    },
    /// Each integration's status (Ready, Active, Warning, Failed) and last result.
    Status {
        /// As JSON, the same as `watch` serves at /status.
        #[arg(long)]
        json: bool,
    },
    /// Scan now and on the schedule (and on S3 events) until SIGTERM; serve /healthz,
    /// /readyz, /metrics and /status.
    Watch,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let _crash_points = dropfolder::crash::setup();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Validate {
                files,
                suggest: true,
                ..
            } => cmd::validate::suggest(&files).await,
            Command::Validate {
                integration, files, ..
            } => cmd::validate::run(&cli.config, integration.as_deref(), &files).await,
            Command::Check {
                offline,
                integration,
            } => cmd::check::run(&cli.config, offline, integration.as_deref()).await,
            Command::Onboard {
                integration,
                principal,
            } => cmd::onboard::run(&cli.config, &integration, principal.as_deref()).await,
            Command::Run => cmd::run::run(&cli.config).await,
            Command::Import {
                integration,
                file,
                errors_csv,
            } => {
                cmd::import::run(
                    &cli.config,
                    integration.as_deref(),
                    &file,
                    errors_csv.as_ref(),
                )
                .await
            }
            Command::Status { json } => cmd::status::run(&cli.config, json).await,
            Command::Watch => cmd::watch::run(&cli.config).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", cmd::one_line(&e));
            cmd::exit_code_of(&e)
        }
    }
}

/// Libraries whose debug and trace output carries secrets. Found by running `run` at
/// `RUST_LOG=trace` through an AssumeRole: the SDK's signing trace (`aws_sigv4`) prints the
/// canonical request with the session token, its orchestrator (`aws_smithy_runtime`) prints
/// the runtime components and every request, with the external ID and session tokens. The
/// rest of the SDK is capped with them (its credential providers handle the same secrets), and
/// h2, whose frame log would show a request's path and query. hyper, hyper-util, reqwest and
/// rustls printed none (header values carrying secrets are marked sensitive). They log at
/// `info` at most, whatever `RUST_LOG` says; `secrets_never_reach_the_log_even_at_trace` in
/// tests/hostile/outbound.rs keeps this list honest.
const SECRET_BEARING_TARGETS: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_s3",
    "aws_sdk_sqs",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_http",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
    "h2",
];

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let requested = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Both must let an event through, so no directive in RUST_LOG (however specific) lifts
    // a cap.
    let capped = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            SECRET_BEARING_TARGETS
                .iter()
                .map(|target| (*target, LevelFilter::INFO)),
        );
    let filter = requested.and(capped);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json().flatten_event(true).with_filter(filter))
            .init(),
    }
}
