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
    pool: Pool<Cache, MakeCache>,
}

pub(crate) type SearchCache<'a> = PoolGuard<'a, Cache, MakeCache>;

impl std::fmt::Debug for Searcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Searcher")
            .field("templates", &self.dfa.pattern_len())
            .finish()
    }
}

impl Searcher {
    /// `anchored`: each template as it runs ([`super::template::anchored`]), in
    /// template order. Match kind `All`: a walk reports every template, and goes on to
    /// the longest match of each.
    pub(crate) fn new(anchored: &[String]) -> Result<Searcher, String> {
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(CACHE_BYTES),
            )
            .thompson(thompson::Config::new().reverse(true))
            .build_many(anchored)
            .map_err(|e| format!("templates: {e}"))?;
        let make = dfa.clone();
        let pool: Pool<Cache, MakeCache> = Pool::new(Box::new(move || make.create_cache()));
        Ok(Searcher { dfa, pool })
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
