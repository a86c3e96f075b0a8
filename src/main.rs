//! The `keel` command line: thin argument parsing over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use keel::lexicon::{check::check, Lexicon};
use keel::replay;
use keel::server::config::{LogFormat, ServerConfig};

/// mimalloc rather than the system allocator: a call's segments, hits and messages are
/// many small allocations, which it serves in about half the time (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "keel",
    version,
    about = "Real-time de-escalation coach for contact-center agents"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server: live coaching over websockets.
    Serve {
        /// Configuration file: its [server] and [tenants.*] tables set up the server,
        /// its [policy] table the coaching policy.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:7070).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Folder for keel's data (default ./keel-data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// The lexicon set (default ./lexicons).
        #[arg(long)]
        lexicons: Option<PathBuf>,
        /// Log format on standard error (default text).
        #[arg(long, value_enum)]
        log_format: Option<keel::server::config::LogFormat>,
    },
    /// Mint a widget token: it lets one agent's widget read one call's feed.
    Token {
        /// The tenant the call belongs to.
        #[arg(long)]
        tenant: String,
        /// The call id (or use --supervisor).
        #[arg(long, required_unless_present = "supervisor")]
        call: Option<String>,
        /// A token for the tenant's supervisor alert feed instead of one call.
        #[arg(long, conflicts_with = "call")]
        supervisor: bool,
        /// Lifetime, e.g. 15m, 2h (default: the server's token_ttl).
        #[arg(long)]
        ttl: Option<humantime::Duration>,
        /// The server's configuration file (for the tenants and the token secret).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The server's data folder, where the token secret is kept (default ./keel-data).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Make a new API key: prints the key (give it to the platform) and the line of
    /// configuration that holds its hash.
    Key {
        /// The tenant the key is for.
        #[arg(long)]
        tenant: String,
    },
    /// Lexicon tools.
    Lexicon {
        #[command(subcommand)]
        cmd: LexiconCmd,
    },
    /// Run recorded calls (native JSON Lines) through the engine offline.
    Replay {
        /// Output format (default json; with --check, only the check report).
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Compare each call with the expectations of its `start.expect`; exit 1 on a difference.
        #[arg(long)]
        check: bool,
        /// Configuration file; its [policy] table sets the coaching policy.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The lexicon set.
        #[arg(long, default_value = "lexicons")]
        lexicons: PathBuf,
        /// Stream the calls into a running server (ws://HOST:PORT) and print what it sends;
        /// the tenant's API key, if the server needs one, is read from KEEL_API_KEY.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// With --to: N times real time, or max.
        #[arg(long, default_value = "max")]
        speed: keel::server::client::Speed,
        /// What the files hold: native JSON Lines (default), or archived calls as SegLST
        /// (JSON) or NIST STM.
        #[arg(long, value_enum, default_value = "native")]
        input: Input,
        /// For SegLST and STM: each speaker's role, e.g. agent=spk1,customer=spk0+spk2.
        #[arg(long, value_name = "ROLE=SPEAKER,...")]
        roles: Option<String>,
        /// Fixture files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LexiconCmd {
    /// Validate a lexicon set and run every example it carries.
    Check {
        /// The lexicon folder.
        #[arg(default_value = "lexicons")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Input {
    /// keel's JSON Lines (`protocol.md`), one call per file.
    Native,
    /// SegLST: a JSON list of {session_id, speaker, words, start_time, end_time}.
    Seglst,
    /// NIST STM: <file> <channel> <speaker> <begin> <end> [<label>] transcript.
    Stm,
}

/// Reads the calls of every file: (a label for reports, the call's events).
fn read_calls(
    files: &[PathBuf],
    input: Input,
    roles: Option<&str>,
) -> Result<Vec<(String, Vec<replay::Line>)>, ExitCode> {
    use keel::archive::{self, ArchiveFormat, Roles};
    let usage = |m: String| {
        eprintln!("keel replay: {m}");
        ExitCode::from(2)
    };
    let format = match input {
        Input::Native => {
            if roles.is_some() {
                return Err(usage(
                    "--roles: native recordings name their speakers' roles".into(),
                ));
            }
            let mut calls = Vec::new();
            for f in files {
                let lines = replay::read_fixture(f).map_err(|e| {
                    eprintln!("{e}");
                    ExitCode::from(2)
                })?;
                calls.push((f.display().to_string(), lines));
            }
            return Ok(calls);
        }
        Input::Seglst => ArchiveFormat::SegLst,
        Input::Stm => ArchiveFormat::Stm,
    };
    let roles = roles
        .ok_or_else(|| {
            usage("--roles: name each speaker's role, e.g. --roles agent=spk1,customer=spk0".into())
        })
        .and_then(|r| Roles::parse(r).map_err(|e| usage(format!("--roles: {e}"))))?;
    let mut calls = Vec::new();
    for f in files {
        let file = f.display().to_string();
        let src = std::fs::read_to_string(f).map_err(|e| usage(format!("{file}: {e}")))?;
        let parsed = archive::parse(format, &file, &src, &roles).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        })?;
        for (call_id, lines) in parsed {
            calls.push((format!("{file} ({call_id})"), lines));
        }
    }
    Ok(calls)
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// The coaching messages keel sends the platform, one JSON object per line.
    Json,
    /// A readable QA timeline with a scorecard.
    Text,
    /// Debug view of lexicon hits: time, speaker, category, matched text.
    Hits,
}

fn load(dir: &std::path::Path) -> Result<Arc<Lexicon>, ExitCode> {
    Lexicon::load(dir).map(Arc::new).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn policy(config: Option<&std::path::Path>) -> Result<keel::coach::Policy, ExitCode> {
    match config {
        Some(path) => keel::coach::Policy::load(path).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        }),
        None => Ok(keel::coach::Policy::default()),
    }
}

/// The `[server]` configuration from the file (or the defaults), with the flags on top.
fn server_config(config: Option<&std::path::Path>) -> Result<ServerConfig, ExitCode> {
    match config {
        Some(path) => ServerConfig::load(path).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        }),
        None => Ok(ServerConfig::default()),
    }
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().flatten_event(true).init(),
        LogFormat::Text => logs.init(),
    }
}

fn serve(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    data: Option<PathBuf>,
    lexicons: Option<PathBuf>,
    log_format: Option<LogFormat>,
) -> Result<(), ExitCode> {
    let mut cfg = server_config(config.as_deref())?;
    cfg.listen = listen.unwrap_or(cfg.listen);
    cfg.data = data.unwrap_or(cfg.data);
    cfg.lexicons = lexicons.unwrap_or(cfg.lexicons);
    cfg.log_format = log_format.unwrap_or(cfg.log_format);
    let listen = cfg.listen;
    if !listen.ip().is_loopback() && !cfg.auth() {
        eprintln!(
            "keel serve: refusing to listen on {listen}: it is not a loopback address and no authentication is configured. \
             Add a [tenants.NAME] table with api_keys_sha256 to the --config file (`keel key --tenant NAME` makes a key), \
             or listen on 127.0.0.1 or [::1]"
        );
        return Err(ExitCode::from(2));
    }
    init_logs(cfg.log_format);
    let policy = policy(config.as_deref())?;
    let lex = load(&cfg.lexicons)?;
    std::fs::create_dir_all(&cfg.data).map_err(|e| {
        eprintln!("keel serve: {}: {e}", cfg.data.display());
        ExitCode::from(2)
    })?;
    let secret =
        keel::server::auth::load_or_create_secret(&cfg.token_secret_path()).map_err(|e| {
            eprintln!(
                "keel serve: token secret {}: {e}",
                cfg.token_secret_path().display()
            );
            ExitCode::from(2)
        })?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("keel serve: {e}");
        ExitCode::from(2)
    })?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            eprintln!("keel serve: cannot listen on {listen}: {e}");
            ExitCode::from(2)
        })?;
        let local = listener.local_addr().map_err(|_| ExitCode::from(2))?;
        eprintln!(
            "keel serve: listening on http://{local} (lexicon {}{})",
            lex.version,
            if cfg.auth() {
                ", authentication on"
            } else {
                ", no authentication: loopback only"
            }
        );
        tracing::info!(
            event = "listening",
            address = %local,
            lexicon = %lex.version,
            tenants = cfg.tenants.len(),
        );
        let lexicon_dir = cfg.lexicons.clone();
        let app = keel::server::App::with_config(lex, Some(lexicon_dir), policy, cfg, secret);
        #[cfg(unix)]
        {
            // SIGHUP reloads the lexicon set; an invalid set is refused and logged.
            let app = app.clone();
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| {
                    eprintln!("keel serve: SIGHUP handler: {e}");
                    ExitCode::from(2)
                })?;
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = app.reload().await;
                }
            });
        }
        let shutdown = async {
            shutdown_signal().await;
            eprintln!("keel serve: shutting down: ending open calls (a second signal forces exit)");
            tokio::spawn(async {
                shutdown_signal().await;
                std::process::exit(130);
            });
        };
        keel::server::run(listener, app, shutdown)
            .await
            .map_err(|e| {
                eprintln!("keel serve: {e}");
                ExitCode::from(1)
            })
    })
}

fn token(
    tenant: String,
    call: Option<String>,
    ttl: Option<humantime::Duration>,
    config: Option<PathBuf>,
    data: Option<PathBuf>,
) -> Result<(), ExitCode> {
    use keel::server::auth::{self, Scope};
    let mut cfg = server_config(config.as_deref())?;
    cfg.data = data.unwrap_or(cfg.data);
    if cfg.auth() && !cfg.tenants.contains_key(&tenant) {
        eprintln!("keel token: --tenant {tenant}: no such tenant in the configuration");
        return Err(ExitCode::from(2));
    }
    if !cfg.auth() && tenant != keel::server::DEFAULT_TENANT {
        eprintln!(
            "keel token: --tenant {tenant}: no tenants are configured, so every call is the tenant {}'s",
            keel::server::DEFAULT_TENANT
        );
        return Err(ExitCode::from(2));
    }
    let ttl: std::time::Duration = ttl.map(Into::into).unwrap_or(cfg.token_ttl);
    if ttl.is_zero() || ttl > cfg.token_max_ttl {
        eprintln!(
            "keel token: --ttl: more than zero and at most {} (server.token_max_ttl)",
            humantime::format_duration(cfg.token_max_ttl)
        );
        return Err(ExitCode::from(2));
    }
    let scope = match call {
        Some(c) => Scope::Call(c),
        None => Scope::Supervisor,
    };
    let path = cfg.token_secret_path();
    let secret = auth::load_or_create_secret(&path).map_err(|e| {
        eprintln!("keel token: token secret {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    println!(
        "{}",
        auth::mint(&secret, &tenant, &scope, ttl, auth::now_secs())
    );
    Ok(())
}

fn key(tenant: String) -> Result<(), ExitCode> {
    if !keel::server::config::valid_name(&tenant) {
        eprintln!("keel key: --tenant {tenant:?}: letters, digits, '-', '_' and '.' only");
        return Err(ExitCode::from(2));
    }
    let key = keel::server::auth::new_key().map_err(|e| {
        eprintln!("keel key: {e}");
        ExitCode::from(2)
    })?;
    println!("API key (give it to the platform; keel keeps only its hash):\n  {key}\n");
    println!("Configuration:\n  [tenants.{tenant}]");
    println!(
        "  api_keys_sha256 = [\"{}\"]",
        keel::server::auth::hash_key(&key)
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn replay_to(
    url: &str,
    speed: keel::server::client::Speed,
    calls: &[(String, Vec<replay::Line>)],
) -> Result<(), ExitCode> {
    if !url.starts_with("ws://") && !url.starts_with("wss://") {
        eprintln!("keel replay --to {url}: expected ws://HOST:PORT");
        return Err(ExitCode::from(2));
    }
    let calls: Vec<(String, &Vec<replay::Line>)> = calls
        .iter()
        .map(|(name, lines)| {
            let call_id = lines
                .iter()
                .find_map(|l| match &l.msg {
                    keel::protocol::Inbound::Start(s) => Some(s.call_id.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    std::path::Path::new(name)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                });
            (call_id, lines)
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("keel replay: {e}");
        ExitCode::from(2)
    })?;
    // The key comes from the environment, not the command line (which others can read).
    let api_key = std::env::var("KEEL_API_KEY").ok().filter(|k| !k.is_empty());
    rt.block_on(async {
        for (call_id, lines) in &calls {
            keel::server::client::stream_call(
                url,
                call_id,
                lines,
                speed,
                api_key.as_deref(),
                |m| println!("{m}"),
            )
            .await
            .map_err(|e| {
                eprintln!("keel replay: {e}");
                ExitCode::from(1)
            })?;
        }
        Ok(())
    })
}

fn run(cli: Cli) -> Result<(), ExitCode> {
    match cli.cmd {
        Cmd::Serve {
            config,
            listen,
            data,
            lexicons,
            log_format,
        } => serve(config, listen, data, lexicons, log_format),
        Cmd::Token {
            tenant,
            call,
            ttl,
            config,
            data,
            ..
        } => token(tenant, call, ttl, config, data),
        Cmd::Key { tenant } => key(tenant),
        Cmd::Lexicon {
            cmd: LexiconCmd::Check { dir },
        } => {
            let lex = load(&dir)?;
            let report = check(&lex);
            for f in &report.failures {
                println!("{f}");
            }
            println!(
                "{}: {} categories, {} entries, {} templates, {} examples checked, {} failed (version {})",
                dir.display(),
                report.categories,
                report.entries,
                report.templates,
                report.examples,
                report.failures.len(),
                lex.version
            );
            if report.ok() {
                Ok(())
            } else {
                Err(ExitCode::from(1))
            }
        }
        Cmd::Replay {
            to: Some(url),
            speed,
            files,
            input,
            roles,
            ..
        } => {
            let calls = read_calls(&files, input, roles.as_deref())?;
            replay_to(&url, speed, &calls)
        }
        Cmd::Replay {
            format,
            check,
            config,
            lexicons,
            files,
            input,
            roles,
            ..
        } => {
            if check && input != Input::Native {
                eprintln!("keel replay: --check compares with each native recording's start.expect; archives carry none");
                return Err(ExitCode::from(2));
            }
            let calls = read_calls(&files, input, roles.as_deref())?;
            let lex = load(&lexicons)?;
            let policy = policy(config.as_deref())?;
            let format = format.or(if check { None } else { Some(Format::Json) });
            let mut failed = 0;
            for (name, lines) in &calls {
                if format == Some(Format::Hits) {
                    println!("# {name}");
                    print!(
                        "{}",
                        replay::format_hits(&lex, &replay::hits_of(&lex, lines))
                    );
                    continue;
                }
                let steps = replay::coach(&lex, &policy, lines);
                match format {
                    Some(Format::Json) => print!("{}", replay::format_json(&steps)),
                    Some(Format::Text) => {
                        println!("# {name}");
                        print!("{}", replay::format_text(&steps));
                    }
                    _ => {}
                }
                if check {
                    let diffs = replay::check(&steps);
                    if diffs.is_empty() {
                        eprintln!("ok    {name}");
                    } else {
                        failed += 1;
                        for d in diffs {
                            eprintln!("FAIL  {name}: {d}");
                        }
                    }
                }
            }
            if check {
                eprintln!("{} passed, {} failed", calls.len() - failed, failed);
            }
            if failed > 0 {
                Err(ExitCode::from(1))
            } else {
                Ok(())
            }
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
