//! Every template of a lexicon in one reverse lazy DFA, anchored at the newest word:
//! one walk back over the window finds every template with a match ending there, and
//! where each match starts. It replaces a search per template that could end on the
//! word, each through a regex of its own with its own tables: those searches were short
//! (most fail within a word or two) but each reached cold memory, while the one shared
//! table stays warm.

use std::panic::{RefUnwindSafe, UnwindSafe};

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::{Pool, PoolGuard};
use regex_automata::{Anchored, MatchKind};

/// The lazy DFA's cache, per thread that searches.
const CACHE_BYTES: usize = 8 << 20;

type MakeCache = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

pub(crate) struct Searcher {
    dfa: DFA,
    /// Whether the automaton reads bytes (see `same_on_bytes`) rather than characters.
    on_bytes: bool,
    pool: Pool<Cache, MakeCache>,
}

pub(crate) type SearchCache<'a> = PoolGuard<'a, Cache, MakeCache>;

impl std::fmt::Debug for Searcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("templates", &self.dfa.pattern_len())
            .field("on_bytes", &self.on_bytes)
            .finish()
    }
}

impl Searcher {
    /// `anchored`: each template as it runs ([`super::template::anchored`]), in
    /// template order. Match kind `All`: a walk reports every template, and goes on to
    /// the longest match of each.
    pub(crate) fn new(anchored: &[String]) -> Result<Searcher, String> {
        let build = |bytes: bool| {
            DFA::builder()
                .configure(
                    DFA::config()
                        .match_kind(MatchKind::All)
                        .cache_capacity(CACHE_BYTES),
                )
                .syntax(
                    regex_automata::util::syntax::Config::new()
                        .unicode(!bytes)
                        .utf8(!bytes),
                )
                .thompson(thompson::Config::new().reverse(true).utf8(!bytes))
                .build_many(anchored)
                .map_err(|e| format!("templates: {e}"))
        };
        // Bytes, not characters, when that matches the same spans (see
        // `same_on_bytes`): a much smaller automaton than UTF-8 sequences need.
        let bytes = anchored.iter().all(|p| same_on_bytes(p));
        let (dfa, on_bytes) = match build(bytes) {
            Ok(dfa) => (dfa, bytes),
            Err(_) => (build(false)?, false),
        };
        let make = dfa.clone();
        let pool: Pool<Cache, MakeCache> = Pool::new(Box::new(move || make.create_cache()));
        Ok(Searcher {
            dfa,
            on_bytes,
            pool,
        })
    }

    /// A cache for searches (this thread's, usually).
    pub(crate) fn cache(&self) -> SearchCache<'_> {
        self.pool.get()
    }

    /// Every template with a match ending at the end of `window`, with where its
    /// longest match starts, in one walk back: appended to `out` as (template, start).
    /// `Err` when the lazy DFA gave up.
    pub(crate) fn all_starts(
        &self,
        cache: &mut Cache,
        window: &str,
        out: &mut Vec<(u16, usize)>,
    ) -> Result<(), ()> {
        use regex_automata::util::start;
        let dfa = &self.dfa;
        let cfg = start::Config::new().anchored(Anchored::Yes);
        let mut sid = dfa.start_state(cache, &cfg).map_err(|_| ())?;
        let b = window.as_bytes();
        let record = |cache: &Cache, sid, start: usize, out: &mut Vec<(u16, usize)>| {
            for i in 0..dfa.match_len(cache, sid) {
                let p = dfa.match_pattern(cache, sid, i).as_usize() as u16;
                match out.iter_mut().find(|(q, _)| *q == p) {
                    Some(e) => e.1 = start,
                    None => out.push((p, start)),
                }
            }
        };
        let mut at = b.len();
        while at > 0 {
            at -= 1;
            sid = dfa.next_state(cache, sid, b[at]).map_err(|_| ())?;
            if sid.is_tagged() {
                if sid.is_match() {
                    record(cache, sid, at + 1, out);
                } else if sid.is_dead() {
                    return Ok(());
                } else if sid.is_quit() {
                    return Err(());
                }
            }
        }
        sid = dfa.next_eoi_state(cache, sid).map_err(|_| ())?;
        if sid.is_match() {
            record(cache, sid, 0, out);
        }
        Ok(())
    }
}

/// Whether `pattern` matches the same spans of valid UTF-8 text read as bytes as read as
/// characters: read as bytes, every class of bytes is ASCII, except a run of a class
/// (`[^ |]*`, `[^ ]+`), which covers the same text either way; classes of characters
/// (`(\$|£|€)`) and literals are their UTF-8 sequences; the only look-around is `^` and
/// `$`. (`[^ ]` alone would match one byte of "é" instead of
/// the letter.)
fn same_on_bytes(pattern: &str) -> bool {
    use regex_syntax::hir::{Class, Hir, HirKind, Look};
    fn ok(h: &Hir, run: bool) -> bool {
        match h.kind() {
            HirKind::Empty | HirKind::Literal(_) => true,
            HirKind::Look(l) => matches!(l, Look::Start | Look::End),
            // A class of characters still matches whole characters (UTF-8 sequences).
            HirKind::Class(Class::Unicode(_)) => true,
            HirKind::Class(Class::Bytes(c)) => run || c.ranges().iter().all(|r| r.end() < 0x80),
            HirKind::Repetition(r) => {
                let run =
                    r.max.is_none() && r.min <= 1 && matches!(r.sub.kind(), HirKind::Class(_));
                ok(&r.sub, run)
            }
            HirKind::Capture(c) => ok(&c.sub, run),
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().all(|h| ok(h, false)),
        }
    }
    // Read as bytes: a pattern that cannot be (a class of non-ASCII characters) is not.
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .is_ok_and(|h| ok(&h, false))
}

#[cfg(test)]
mod tests {
    use super::same_on_bytes;
    use crate::lexicon::Lexicon;

    /// The windows the matcher searches: every word end of the recorded calls' finals,
    /// as `" tok tok | tok"`, cut to its last 120 bytes at a space.
    fn corpus_windows(lex: &Lexicon) -> Vec<String> {
        use crate::protocol::Inbound;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = crate::replay::jsonl_files(&root.join("fixtures/calls")).expect("fixtures");
        let mut texts: Vec<String> = Vec::new();
        for f in files {
            for l in crate::replay::read_fixture(&f).expect("fixture") {
                if let Inbound::Transcript(t) = l.msg {
                    if t.is_final {
                        texts.push(lex.normalizer.normalize_str(&t.text));
                    }
                }
            }
        }
        // Characters the corpus lacks: signs and letters of more than one byte.
        texts.push("i was charged £50 and €20 for the café au lait refund".into());
        texts.push("refund the full €1,200 to my naïve account".into());
        let mut out = Vec::new();
        for text in texts {
            let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
            for end in 1..=words.len() {
                let mut w = format!(" {}", words[..end].join(" "));
                if w.len() > 120 {
                    let mut from = w.len() - 120;
                    while !w.is_char_boundary(from) {
                        from += 1;
                    }
                    let at = w[from..].find(' ').map_or(from, |p| from + p);
                    w = w[at..].to_string();
                }
                out.push(w);
            }
        }
        out
    }

    /// The one walk back finds, for every template, what the template's own regex finds
    /// at the end of the window (every window for what the walk finds; one in 13, and
    /// every one with characters of more than one byte, for all templates); and every template that matches there is one the matcher would
    /// have tried at that word (its triggers are a superset).
    #[test]
    fn one_walk_finds_what_each_template_finds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lexicons");
        let lex = Lexicon::load(&dir).expect("the product lexicon loads");
        let ends: Vec<super::super::template::Ends> = lex
            .templates
            .iter()
            .map(|t| {
                let c = &lex.categories[t.category as usize];
                let src = &c.source.templates[t.entry as usize - c.source.entries.len()];
                super::super::template::ends(
                    &super::super::template::expand(&src.text).expect("expands"),
                )
            })
            .collect();
        let windows = corpus_windows(&lex);
        assert!(windows.len() > 10_000, "{} windows", windows.len());
        let mut cache = lex.searcher.cache();
        let (mut starts, mut matched) = (Vec::new(), 0);
        for (i, w) in windows.iter().enumerate() {
            starts.clear();
            lex.searcher
                .all_starts(&mut cache, w, &mut starts)
                .expect("the walk does not give up");
            let mut toks = w.rsplit(' ');
            let last = toks.next().unwrap_or("");
            let pair = format!("{} {last}", toks.next().unwrap_or(""));
            let all = i % 13 == 0 || !w.is_ascii();
            for (ti, t) in lex.templates.iter().enumerate() {
                if !all && !starts.iter().any(|(p, _)| *p as usize == ti) {
                    continue;
                }
                let want = t.regex.find(w).map(|m| m.start());
                let got = starts.iter().find(|(p, _)| *p as usize == ti).map(|x| x.1);
                assert_eq!(got, want, "template {ti} ({}) on {w:?}", t.regex.as_str());
                if want.is_some() {
                    matched += 1;
                    let e = &ends[ti];
                    let tried = e.always
                        || (e.digits && last.bytes().any(|b| b.is_ascii_digit()))
                        || e.words.contains(last)
                        || e.pairs.contains(&pair);
                    assert!(tried, "template {ti} matches {w:?} but is not tried there");
                }
            }
        }
        assert!(
            matched > 200,
            "only {matched} matches: the check would prove little"
        );
    }

    #[test]
    fn the_product_templates_run_on_bytes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lexicons");
        let lex = Lexicon::load(&dir).expect("the product lexicon loads");
        assert!(lex.searcher.on_bytes);
    }

    #[test]
    fn templates_run_on_bytes_only_when_that_is_the_same() {
        assert!(same_on_bytes(
            "(?:^| )(?:refund (you )?[0-9]+ (dollars|£))$"
        ));
        assert!(same_on_bytes(
            "(?:^| )(?:(?:[a-m][^ |]*|not[^ |]+) ){0,5}today$"
        ));
        // One character of any kind is one to four bytes.
        assert!(!same_on_bytes("(?:^| )(?:x[^ ]y)$"));
        assert!(!same_on_bytes("(?:^| )(?:x.y)$"));
        assert!(!same_on_bytes("(?:^| )(?:[^ ]{2,} ok)$"));
        // Characters written out match whole; a class of them cannot be read as bytes.
        assert!(same_on_bytes(r"(?:^| )(?:(\$|£|€) ?5)$"));
        assert!(!same_on_bytes("(?:^| )(?:[£€]5)$"));
        assert!(!same_on_bytes(r"(?:^| )(?:\bword)$"));
    }
}
