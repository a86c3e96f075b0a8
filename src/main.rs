//! The `keel` command line: thin argument parsing over the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use keel::lexicon::{check::check, Lexicon};
use keel::replay;

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
        /// Configuration file; its [policy] table sets the coaching policy.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        /// Folder for keel's data.
        #[arg(long, default_value = "keel-data")]
        data: PathBuf,
        /// The lexicon set.
        #[arg(long, default_value = "lexicons")]
        lexicons: PathBuf,
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
        /// Stream the calls into a running server (ws://HOST:PORT) and print what it sends.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// With --to: N times real time, or max.
        #[arg(long, default_value = "max")]
        speed: keel::server::client::Speed,
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

fn serve(
    config: Option<PathBuf>,
    listen: std::net::SocketAddr,
    data: PathBuf,
    lexicons: PathBuf,
) -> Result<(), ExitCode> {
    if !listen.ip().is_loopback() {
        eprintln!(
            "keel serve: refusing to listen on {listen}: it is not a loopback address and no authentication is configured \
             (keel does not support tenant authentication yet); listen on 127.0.0.1 or [::1]"
        );
        return Err(ExitCode::from(2));
    }
    let policy = policy(config.as_deref())?;
    let lex = load(&lexicons)?;
    std::fs::create_dir_all(&data).map_err(|e| {
        eprintln!("keel serve: {}: {e}", data.display());
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
        eprintln!(
            "keel serve: listening on http://{} (lexicon {})",
            listener.local_addr().map_err(|_| ExitCode::from(2))?,
            lex.version
        );
        let app = keel::server::App::new(lex, policy);
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
    files: &[PathBuf],
) -> Result<(), ExitCode> {
    if !url.starts_with("ws://") && !url.starts_with("wss://") {
        eprintln!("keel replay --to {url}: expected ws://HOST:PORT");
        return Err(ExitCode::from(2));
    }
    let mut calls = Vec::new();
    for f in files {
        let lines = replay::read_fixture(f).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        })?;
        let call_id = lines
            .iter()
            .find_map(|l| match &l.msg {
                keel::protocol::Inbound::Start(s) => Some(s.call_id.clone()),
                _ => None,
            })
            .unwrap_or_else(|| {
                f.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        calls.push((call_id, lines));
    }
    let rt = tokio::runtime::Runtime::new().map_err(|e| {
        eprintln!("keel replay: {e}");
        ExitCode::from(2)
    })?;
    rt.block_on(async {
        for (call_id, lines) in &calls {
            keel::server::client::stream_call(url, call_id, lines, speed, |m| println!("{m}"))
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
        } => serve(config, listen, data, lexicons),
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
            ..
        } => replay_to(&url, speed, &files),
        Cmd::Replay {
            format,
            check,
            config,
            lexicons,
            files,
            ..
        } => {
            let lex = load(&lexicons)?;
            let policy = policy(config.as_deref())?;
            let format = format.or(if check { None } else { Some(Format::Json) });
            let mut failed = 0;
            for f in &files {
                let lines = replay::read_fixture(f).map_err(|e| {
                    eprintln!("{e}");
                    ExitCode::from(2)
                })?;
                if format == Some(Format::Hits) {
                    println!("# {}", f.display());
                    print!(
                        "{}",
                        replay::format_hits(&lex, &replay::hits_of(&lex, &lines))
                    );
                    continue;
                }
                let steps = replay::coach(&lex, &policy, &lines);
                match format {
                    Some(Format::Json) => print!("{}", replay::format_json(&steps)),
                    Some(Format::Text) => {
                        println!("# {}", f.display());
                        print!("{}", replay::format_text(&steps));
                    }
                    _ => {}
                }
                if check {
                    let diffs = replay::check(&steps);
                    if diffs.is_empty() {
                        eprintln!("ok    {}", f.display());
                    } else {
                        failed += 1;
                        for d in diffs {
                            eprintln!("FAIL  {}: {d}", f.display());
                        }
                    }
                }
            }
            if check {
                eprintln!("{} passed, {} failed", files.len() - failed, failed);
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
