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

fn run(cli: Cli) -> Result<(), ExitCode> {
    match cli.cmd {
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
            format,
            check,
            config,
            lexicons,
            files,
        } => {
            let lex = load(&lexicons)?;
            let policy = match config {
                Some(path) => keel::coach::Policy::load(&path).map_err(|e| {
                    eprintln!("{e}");
                    ExitCode::from(2)
                })?,
                None => keel::coach::Policy::default(),
            };
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
