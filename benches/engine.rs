//! Whole-session throughput: every recorded call (fixtures/calls), partials included,
//! through a coaching session from `start` to the record, on one core; and the size of
//! a session's saved state.
//!
//! Run: `cargo bench --bench engine`

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use divan::counter::{BytesCount, ItemsCount};
use divan::Bencher;
use keel::coach::{Policy, Session};
use keel::lexicon::Lexicon;
use keel::protocol::Inbound;
use keel::replay::read_fixture;

/// The allocator of keel's binary (src/main.rs), so that the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Corpus {
    calls: Vec<Vec<Inbound>>,
    finals: usize,
    bytes: usize,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let files =
            keel::replay::jsonl_files(&root().join("fixtures/calls")).expect("fixtures/calls");
        let (mut finals, mut bytes) = (0, 0);
        let calls = files
            .iter()
            .map(|f| {
                let msgs: Vec<Inbound> = read_fixture(f)
                    .expect("fixture")
                    .into_iter()
                    .map(|l| l.msg)
                    .collect();
                for m in &msgs {
                    if let Inbound::Transcript(t) = m {
                        bytes += t.text.len();
                        finals += t.is_final as usize;
                    }
                }
                msgs
            })
            .collect();
        Corpus {
            calls,
            finals,
            bytes,
        }
    })
}

fn lexicon() -> &'static Arc<Lexicon> {
    static L: OnceLock<Arc<Lexicon>> = OnceLock::new();
    L.get_or_init(|| Arc::new(Lexicon::load(&root().join("lexicons")).expect("lexicons")))
}

#[divan::bench]
fn session(b: Bencher) {
    let c = corpus();
    let lex = lexicon();
    b.counter(ItemsCount::new(c.finals))
        .counter(BytesCount::new(c.bytes))
        .bench(|| {
            let mut n = 0;
            for call in &c.calls {
                let mut s = Session::new(Arc::clone(lex), Policy::default(), "bench");
                for m in call {
                    n += s.feed(m).len();
                }
            }
            divan::black_box(n)
        });
}

fn main() {
    let c = corpus();
    let lex = lexicon();
    // The saved state of each call at its midpoint and at its end.
    let (mut mid, mut end) = (Vec::new(), Vec::new());
    for call in &c.calls {
        let mut s = Session::new(Arc::clone(lex), Policy::default(), "bench");
        for (i, m) in call.iter().enumerate() {
            if i == call.len() / 2 {
                mid.push(s.save().len());
            }
            s.feed(m);
        }
        end.push(s.save().len());
    }
    let avg = |v: &[usize]| v.iter().sum::<usize>() / v.len().max(1);
    println!(
        "corpus: {} calls, {} messages, {} final segments, {} bytes of transcript",
        c.calls.len(),
        c.calls.iter().map(Vec::len).sum::<usize>(),
        c.finals,
        c.bytes
    );
    println!(
        "session state (saved JSON): mid-call {} bytes on average (max {}), at the end {} bytes on average (max {})",
        avg(&mid),
        mid.iter().max().unwrap_or(&0),
        avg(&end),
        end.iter().max().unwrap_or(&0)
    );
    divan::main();
}
