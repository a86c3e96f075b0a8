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
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Hits)]
        format: Format,
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

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Debug view: time, speaker, category, matched text.
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
            format: Format::Hits,
            lexicons,
            files,
        } => {
            let lex = load(&lexicons)?;
            for f in files {
                let lines = replay::read_fixture(&f).map_err(|e| {
                    eprintln!("{e}");
                    ExitCode::from(2)
                })?;
                println!("# {}", f.display());
                print!(
                    "{}",
                    replay::format_hits(&lex, &replay::hits_of(&lex, &lines))
                );
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
