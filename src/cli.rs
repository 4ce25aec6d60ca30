//! The command line: one subcommand per job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pacer_config::Config;
use pacer_dialer::import::{ImportOptions, Mapping, import_csv};
use pacer_dialer::store::{Role, Store, StoreOptions};

/// Pacer: outbound predictive dialer and CTI softswitch.
#[derive(Debug, Parser)]
#[command(name = "pacer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: HTTP API, metrics, health checks.
    Serve {
        /// Configuration file (TOML); defaults run on loopback without one.
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Check a configuration file; print every problem as `key: reason`.
    CheckConfig {
        /// The file to check (environment overrides apply too).
        file: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run a predictive campaign against a simulated carrier and simulated agents over
    /// real SIP/RTP on loopback, with a live progress line and a summary.
    Demo(crate::demo::DemoArgs),
    /// Run the pacing engine and ACD in virtual time on a scenario file.
    Simulate(crate::simulate::SimulateArgs),
    /// Import a CSV file of leads into a campaign's list; prints the JSON report.
    Import {
        /// The campaign, by id or name.
        #[arg(long)]
        campaign: String,
        /// The list's name; created in the campaign when it does not exist.
        #[arg(long)]
        list: String,
        /// Column mapping `field=column` (phone, alt_phone, name, time_zone, postal_code);
        /// comma-separated or repeated. Unmapped columns become custom fields.
        #[arg(long = "map", value_name = "FIELD=COLUMN")]
        map: Vec<String>,
        /// Country for numbers without a country code (default: dialer.default_country).
        #[arg(long)]
        country: Option<String>,
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
        /// The CSV file (UTF-8, with or without BOM; `,` or `;` separated).
        file: PathBuf,
    },
    /// Stop (`on`) or resume (`off`) dialling on every node sharing the database, or show
    /// the switch (`status`). The same switch as `/api/v1/dialer/kill`, written straight
    /// to the database, so it works when the HTTP server does not.
    Kill {
        #[arg(value_enum)]
        action: KillAction,
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage the users of the supervisor page and the API (agents are created through
    /// `POST /api/v1/agents`).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// TLS certificates.
    Cert {
        #[command(subcommand)]
        action: CertCommand,
    },
    /// API tokens for integrations: each carries its user's role and can be revoked.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// Write a self-signed certificate (dev-cert.pem) and key (dev-key.pem) for
    /// localhost, 127.0.0.1, ::1 and `--name`s, and print the config lines that use them.
    /// For development only: browsers warn about it until it is trusted.
    Dev {
        /// Directory to write to (default: the data directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// More host names or addresses the certificate is for (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a token for a user; prints it once as a JSON line (only its hash is stored).
    Create {
        #[arg(long)]
        username: String,
        /// What the token is for ("crm", "grafana").
        #[arg(long)]
        name: String,
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Every token (never the secrets), one JSON line each.
    List {
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revoke a token at once.
    Revoke {
        id: i64,
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KillAction {
    On,
    Off,
    Status,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; prints it as one JSON line.
    Add {
        #[arg(long)]
        username: String,
        /// supervisor, manager or admin.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of standard input (never from the
        /// command line, where other users of the machine could read it).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long, short, env = "PACER_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config } => {
            let cfg = load(config.as_deref())?;
            crate::logging::init(&cfg.logging)?;
            runtime()?.block_on(crate::serve::serve(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match Config::load(Some(&file)) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprint!("{}: {e}", file.display());
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Migrate { config } => {
            let cfg = load(config.as_deref())?;
            crate::logging::init(&cfg.logging)?;
            runtime()?.block_on(async {
                let store = open_store(&cfg).await?;
                let pending = store.pending_migrations().await?;
                store.migrate().await?;
                println!("{} migration(s) applied; the database is up to date", pending.len());
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => crate::demo::run(args),
        Command::Simulate(args) => crate::simulate::run(args),
        Command::Import { campaign, list, map, country, config, file } => {
            let cfg = load(config.as_deref())?;
            crate::logging::init(&cfg.logging)?;
            let mut mapping = Mapping::default();
            for m in &map {
                mapping.add(m).map_err(|e| anyhow::anyhow!("--map {m}: {e}"))?;
            }
            let input = std::fs::File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let opts = ImportOptions { mapping, default_country: country.unwrap_or_else(|| cfg.dialer.default_country.clone()) };
            let report = runtime()?.block_on(async {
                let store = open_store(&cfg).await?;
                if cfg.database.migrate_on_start {
                    store.migrate().await.context("applying migrations")?;
                }
                let c = match campaign.parse::<i64>() {
                    Ok(id) => store.campaign(id).await,
                    Err(_) => store.campaign_by_name(&campaign).await,
                }
                .with_context(|| format!("--campaign {campaign}"))?;
                let l = match store.list_by_name(c.id, &list).await? {
                    Some(l) => l,
                    None => store.create_list(c.id, &list, 0).await?,
                };
                let report = import_csv(&store, l.id, input, opts).await.with_context(|| format!("importing {}", file.display()))?;
                store.close().await;
                anyhow::Ok(report)
            })?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Kill { action, config } => {
            let cfg = load(config.as_deref())?;
            crate::logging::init(&cfg.logging)?;
            let state = runtime()?.block_on(async {
                let store = open_store(&cfg).await?;
                if cfg.database.migrate_on_start {
                    store.migrate().await.context("applying migrations")?;
                }
                let state = match action {
                    KillAction::On => set_kill_switch(&store, true).await,
                    KillAction::Off => set_kill_switch(&store, false).await,
                    KillAction::Status => store.kill_switch().await,
                };
                store.close().await;
                anyhow::Ok(state.context("the kill switch")?)
            })?;
            println!("{}", serde_json::to_string(&state)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::User { action: UserCommand::Add { username, role, password_stdin: _, config } } => {
            let role = match Role::parse(&role) {
                Some(Role::Agent) => anyhow::bail!("--role agent: agents are created with POST /api/v1/agents"),
                Some(r) => r,
                None => anyhow::bail!("--role {role:?}: supervisor, manager or admin"),
            };
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(password.chars().count() >= 8, "the password (standard input): at least 8 characters");
            let cfg = load(config.as_deref())?;
            crate::logging::init(&cfg.logging)?;
            let user = runtime()?.block_on(async {
                let store = open_store(&cfg).await?;
                if cfg.database.migrate_on_start {
                    store.migrate().await.context("applying migrations")?;
                }
                let user = store.create_user(&username, role, &crate::auth::hash_password(password)).await.with_context(|| format!("--username {username}"));
                if let Ok(u) = &user {
                    cli_audit(&store, "user_add", &u.username, u.role.as_str()).await;
                }
                store.close().await;
                user
            })?;
            println!("{}", serde_json::json!({"id": user.id, "username": user.username, "role": user.role.as_str()}));
            Ok(ExitCode::SUCCESS)
        }
        Command::Cert { action: CertCommand::Dev { dir, names, config } } => {
            let dir = match dir {
                Some(d) => d,
                None => load(config.as_deref())?.data_dir,
            };
            let (cert, key) = crate::tls::write_dev_cert(&dir, &names)?;
            println!("[http]\ntls_cert = {:?}\ntls_key = {:?}", cert.display().to_string(), key.display().to_string());
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { action } => {
            let config = match &action {
                TokenCommand::Create { config, .. } | TokenCommand::List { config } | TokenCommand::Revoke { config, .. } => config.clone(),
            };
            let cfg = load(config.as_deref())?;
            crate::logging::init(&cfg.logging)?;
            runtime()?.block_on(async {
                let store = open_store(&cfg).await?;
                if cfg.database.migrate_on_start {
                    store.migrate().await.context("applying migrations")?;
                }
                let r = token_command(&store, action).await;
                store.close().await;
                r
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who acts from this shell: `cli:` and the OS user.
fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

/// An audit-log row for an action taken from this shell.
async fn cli_audit(store: &Store, action: &str, target: &str, detail: &str) {
    crate::auth::audit(store, pacer_dialer::store::AuditEvent { actor: &cli_actor(), action, target, detail, source: "cli" }).await;
}

/// Sets the kill switch from this shell; the row and the audit log name the OS user.
async fn set_kill_switch(store: &Store, on: bool) -> Result<pacer_dialer::store::KillSwitch, pacer_dialer::store::StoreError> {
    let state = store.set_kill_switch(on, &cli_actor()).await?;
    cli_audit(store, "kill_switch", "dialer", if on { "on" } else { "off" }).await;
    Ok(state)
}

async fn token_command(store: &Store, action: TokenCommand) -> anyhow::Result<()> {
    match action {
        TokenCommand::Create { username, name, .. } => {
            let (record, token) = crate::api::access::issue_token(store, &username, &name).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
            cli_audit(store, "token_create", &username, &format!("token {} {:?}", record.id, record.name)).await;
            let mut v = serde_json::to_value(&record)?;
            v["token"] = serde_json::Value::String(token);
            println!("{v}");
        }
        TokenCommand::List { .. } => {
            for t in store.tokens().await? {
                println!("{}", serde_json::to_string(&t)?);
            }
        }
        TokenCommand::Revoke { id, .. } => {
            let revoked = store.revoke_token(id).await.with_context(|| format!("token {id}"))?;
            if revoked {
                cli_audit(store, "token_revoke", &format!("token {id}"), "").await;
            }
            println!("{}", serde_json::json!({"id": id, "revoked": true, "already_revoked": !revoked}));
        }
    }
    Ok(())
}

fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    Config::load(file).map_err(|e| anyhow::anyhow!("{e}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

/// Open the configured database.
pub async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    let url = cfg.database_url();
    let opts = StoreOptions {
        max_connections: cfg.database.max_connections,
        acquire_timeout: std::time::Duration::from_secs(cfg.database.acquire_timeout_s),
    };
    Store::connect(&url, &opts).await.with_context(|| format!("opening the database {}", redact(&url)))
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(super::redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://data/p.db"), "sqlite://data/p.db");
    }
}
