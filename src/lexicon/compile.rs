//! Compiling a lexicon set: one Aho-Corasick DFA over every entry fragment, exception
//! and modifier cue (as whole-word patterns `" w1 w2 "` over normalised text), plus the
//! end-anchored template regexes. Compiled once, shared read-only by every call.

use std::collections::HashMap;
use std::path::Path;

use aho_corasick::nfa::contiguous::NFA as Automaton;
use aho_corasick::MatchKind;
use regex::Regex;
use sha2::{Digest, Sha256};

use super::load::{load_dir, LexiconError, LexiconErrors, Lined, SourceCategory};
use super::{template, Kind, SpeakerFilter};
use crate::text::normalize::plain_words;
use crate::text::{Normalizer, Vocab};

/// Most words a gap may skip.
pub const MAX_GAP: u8 = 8;
/// The default gap (`...`).
pub const DEFAULT_GAP: u8 = 3;

/// Modifier cue kinds, as the matcher tracks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cue {
    Negation,
    Reported,
    Person,
    Thing,
    ClauseBreak,
}

/// What an automaton pattern stands for (one pattern may have several uses).
#[derive(Clone, Copy, Debug)]
pub enum Use {
    /// A whole entry without gaps.
    Entry { category: u16, entry: u16 },
    /// Fragment `frag` of a gapped entry.
    Fragment { gapped: u16, frag: u8 },
    /// A modifier cue of a modifier category.
    Cue { cue: Cue, category: u16 },
    /// An exception phrase of a category.
    Exception { category: u16 },
    /// A word that can end templates: those of `Lexicon::trigger_items[start..][..len]`
    /// are tried when it ends.
    Trigger { start: u32, len: u16 },
}

/// An automaton pattern as the matcher needs it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PatternInfo {
    /// Where its uses start in `Lexicon::use_list`, and how many.
    pub(crate) start: u32,
    pub(crate) len: u16,
    /// Its number of words.
    pub(crate) tokens: u8,
    /// The matcher's passes its uses take part in (bit 0: cues and triggers, 1: entries
    /// and fragments, 2: exceptions), so a pass skips the rest.
    pub(crate) passes: u8,
}

impl PatternInfo {
    pub(crate) fn uses<'a>(&self, lex: &'a Lexicon) -> &'a [Use] {
        &lex.use_list[self.start as usize..][..self.len as usize]
    }
}

/// A gapped entry: its fragments' token counts and the gap after each fragment.
#[derive(Clone, Debug)]
pub struct Gapped {
    pub category: u16,
    pub entry: u16,
    pub frag_tokens: Vec<u8>,
    pub gaps: Vec<u8>,
    /// Progress key after each fragment: entries that start with the same fragments and
    /// gaps share keys, so a shared prefix takes one slot of stream state, not one per entry.
    pub prefix_keys: Vec<u32>,
}

/// A compiled category.
#[derive(Clone, Debug)]
pub struct Category {
    pub id: String,
    pub speaker: SpeakerFilter,
    pub kind: Kind,
    pub tag: Option<String>,
    pub negatable: bool,
    pub reportable: bool,
    pub directed: bool,
    pub vocative: bool,
    /// Words a hit of each entry (templates follow the entries) waits for before it is
    /// decided: how far an exception containing it reaches past it, and one word for
    /// directed categories (a following "you", the clause end of a vocative).
    pub hold: Vec<u8>,
    /// Hits wait in the pending list (directedness or exceptions to decide).
    pub deferred: bool,
    pub source: SourceCategory,
}

impl Category {
    /// The source text of entry or template `i` (templates follow the entries).
    pub fn entry_text(&self, i: u16) -> &str {
        let i = i as usize;
        let n = self.source.entries.len();
        if i < n {
            &self.source.entries[i].text
        } else {
            self.source
                .templates
                .get(i - n)
                .map(|t| t.text.as_str())
                .unwrap_or("")
        }
    }
}

/// A compiled template.
#[derive(Clone, Debug)]
pub struct Template {
    pub category: u16,
    pub entry: u16,
    pub regex: Regex,
}

/// A compiled lexicon set.
#[derive(Debug)]
pub struct Lexicon {
    /// `sha256:<hex>` over the files' paths and contents.
    pub version: String,
    pub categories: Vec<Category>,
    pub normalizer: Normalizer,
    pub(crate) dfa: Automaton,
    /// Per automaton pattern: its words and uses (one load for the matcher).
    pub(crate) pattern_info: Vec<PatternInfo>,
    /// The uses of every pattern, one after another.
    pub(crate) use_list: Vec<Use>,
    pub(crate) gapped: Vec<Gapped>,
    pub(crate) templates: Vec<Template>,
    /// Templates tried at a word, per trigger word.
    pub(crate) trigger_items: Vec<u16>,
    /// Templates tried at a word with a digit.
    pub(crate) digit_templates: Vec<u16>,
    /// Templates tried at every word (a class of letters can end them).
    pub(crate) always_templates: Vec<u16>,
    /// Every template in one reverse automaton (searches share its tables).
    pub(crate) searcher: super::reverse::Searcher,
    /// Number of entries (phrases) and templates, for reports.
    pub entry_count: usize,
    pub template_count: usize,
    pub pattern_count: usize,
}

/// Splits an entry into fragments and gaps: "sorry ... for the" -> (["sorry", "for the"], [3]).
pub fn split_gaps(entry: &str) -> Result<(Vec<String>, Vec<u8>), String> {
    let mut frags = Vec::new();
    let mut gaps = Vec::new();
    let mut cur = String::new();
    let s = entry.replace('…', "...");
    let mut rest = s.as_str();
    while let Some(pos) = rest.find("...") {
        cur.push_str(&rest[..pos]);
        let after = &rest[pos + 3..];
        let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
        let gap: u8 = if digits.is_empty() {
            DEFAULT_GAP
        } else {
            digits
                .parse()
                .map_err(|_| "gap size is not a number".to_string())?
        };
        if gap == 0 || gap > MAX_GAP {
            return Err(format!("gap size {gap}: allowed 1 to {MAX_GAP}"));
        }
        if cur.trim().is_empty() {
            return Err("a gap needs words on both sides".into());
        }
        frags.push(std::mem::take(&mut cur));
        gaps.push(gap);
        rest = &after[digits.len()..];
    }
    cur.push_str(rest);
    if cur.trim().is_empty() {
        return Err(if gaps.is_empty() {
            "empty entry".into()
        } else {
            "a gap needs words on both sides".into()
        });
    }
    frags.push(cur);
    if frags.len() > 8 {
        return Err("at most 7 gaps in one entry".into());
    }
    Ok((frags, gaps))
}

/// The syntax check the loader runs on every entry.
pub fn check_entry_syntax(entry: &str) -> Result<(), String> {
    let (frags, _) = split_gaps(entry)?;
    for f in &frags {
        if plain_words(f).is_empty() {
            return Err("a part of the entry has no words".into());
        }
    }
    Ok(())
}

fn cue_of(kind: Kind) -> Option<Cue> {
    Some(match kind {
        Kind::Negation => Cue::Negation,
        Kind::ReportedSpeech => Cue::Reported,
        Kind::PersonCue => Cue::Person,
        Kind::ThingCue => Cue::Thing,
        Kind::ClauseBreak => Cue::ClauseBreak,
        _ => return None,
    })
}

/// How many words past the end of `entry` any exception containing it reaches.
fn overhang(entry: &[String], exceptions: &[Vec<String>]) -> u8 {
    let mut most = 0usize;
    for x in exceptions {
        if x.len() < entry.len() {
            continue;
        }
        for pos in 0..=x.len() - entry.len() {
            if x[pos..pos + entry.len()] == *entry {
                most = most.max(x.len() - pos - entry.len());
            }
        }
    }
    most.min(255) as u8
}

/// Content hash of a lexicon set: sha256 over each file's relative path and contents.
pub fn version_of(sources: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = sources.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (name, src) in sorted {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(src.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An empty lexicon: what a restored session holds until it is given its own.
pub fn empty_lexicon() -> std::sync::Arc<Lexicon> {
    static EMPTY: std::sync::OnceLock<std::sync::Arc<Lexicon>> = std::sync::OnceLock::new();
    EMPTY
        .get_or_init(|| {
            std::sync::Arc::new(
                Lexicon::compile(Vec::new(), &[]).expect("an empty lexicon compiles"),
            )
        })
        .clone()
}

impl Lexicon {
    /// Loads and compiles every lexicon file under `dir`.
    pub fn load(dir: &Path) -> Result<Lexicon, LexiconErrors> {
        let (cats, sources) = load_dir(dir)?;
        Lexicon::compile(cats, &sources)
    }

    /// Compiles validated categories. `sources` (file name, contents) give the version.
    pub fn compile(
        cats: Vec<SourceCategory>,
        sources: &[(String, String)],
    ) -> Result<Lexicon, LexiconErrors> {
        if cats.len() > u16::MAX as usize {
            return Err(LexiconErrors(vec![LexiconError {
                file: "lexicons".into(),
                line: 0,
                reason: "too many categories".into(),
            }]));
        }
        // Pass 1: the vocabulary that ambiguous rewrites resolve against. A mask
        // ("f***") prefers the words of one-word abuse entries, in lexicon order, over
        // the words inside longer phrases ("find you", "come down").
        let mut vocab = Vocab::new();
        let words_of = |e: &Lined| plain_words(&e.text.replace('…', " ").replace("...", " "));
        for c in cats.iter().filter(|c| c.kind.is_maskable()) {
            for e in &c.entries {
                if let [w] = words_of(e).as_slice() {
                    vocab.insert_maskable(w);
                }
            }
        }
        for c in &cats {
            for e in c.entries.iter().chain(&c.exceptions) {
                for w in words_of(e) {
                    if w.bytes().all(|b| b.is_ascii_digit()) {
                        continue;
                    }
                    if c.kind.is_maskable() {
                        vocab.insert_maskable(&w);
                    } else {
                        vocab.insert(&w);
                    }
                }
            }
        }
        let normalizer = Normalizer::new(vocab);

        // Pass 2: patterns.
        let mut errors = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut uses: Vec<Vec<Use>> = Vec::new();
        let mut gapped = Vec::new();
        let mut prefixes: HashMap<(Vec<u32>, Vec<u8>), u32> = HashMap::new();
        let mut templates = Vec::new();
        let mut trigger_map: HashMap<String, Vec<u16>> = HashMap::new();
        let mut digit_templates: Vec<u16> = Vec::new();
        let mut always_templates: Vec<u16> = Vec::new();
        let mut runnable: Vec<String> = Vec::new();
        let mut categories = Vec::with_capacity(cats.len());
        let mut entry_count = 0;

        let mut pattern_for = |norm: &str, u: Use| -> usize {
            let key = format!(" {norm} ");
            let id = *index.entry(key.clone()).or_insert_with(|| {
                patterns.push(key);
                uses.push(Vec::new());
                patterns.len() - 1
            });
            uses[id].push(u);
            id
        };
        let norm_phrase = |l: &Lined,
                           what: &str,
                           c: &SourceCategory,
                           errors: &mut Vec<LexiconError>|
         -> Option<String> {
            let n = normalizer.normalize_str(&l.text);
            let n = n
                .trim_end_matches(" |")
                .trim_end_matches('|')
                .trim()
                .to_string();
            if n.is_empty() {
                errors.push(LexiconError {
                    file: c.file.clone(),
                    line: l.line,
                    reason: format!("{}: {what} {:?} has no words", c.id, l.text),
                });
                return None;
            }
            if n.split(' ').any(|t| t == "|") {
                errors.push(LexiconError {
                    file: c.file.clone(),
                    line: l.line,
                    reason: format!(
                        "{}: {what} {:?} spans a clause end (. ! ? ; :)",
                        c.id, l.text
                    ),
                });
                return None;
            }
            Some(n)
        };

        for (ci, c) in cats.iter().enumerate() {
            let cid = ci as u16;
            let cue = cue_of(c.kind);
            let mut max_exc_tokens = 0u8;
            // Normalised words of each entry (None: gapped, or failed).
            let mut entry_words: Vec<Option<Vec<String>>> = vec![None; c.entries.len()];
            for (ei, e) in c.entries.iter().enumerate() {
                entry_count += 1;
                let ei = ei as u16;
                let (frags, gaps) = match split_gaps(&e.text) {
                    Ok(x) => x,
                    Err(reason) => {
                        errors.push(LexiconError {
                            file: c.file.clone(),
                            line: e.line,
                            reason,
                        });
                        continue;
                    }
                };
                if let Some(cue) = cue {
                    if frags.len() > 1 {
                        errors.push(LexiconError {
                            file: c.file.clone(),
                            line: e.line,
                            reason: format!("{}: modifier entries cannot have gaps", c.id),
                        });
                        continue;
                    }
                    if let Some(n) = norm_phrase(e, "entry", c, &mut errors) {
                        pattern_for(&n, Use::Cue { cue, category: cid });
                    }
                    continue;
                }
                if frags.len() == 1 {
                    if let Some(n) = norm_phrase(e, "entry", c, &mut errors) {
                        entry_words[ei as usize] = Some(n.split(' ').map(str::to_string).collect());
                        pattern_for(
                            &n,
                            Use::Entry {
                                category: cid,
                                entry: ei,
                            },
                        );
                    }
                    continue;
                }
                let gi = gapped.len() as u16;
                let mut frag_tokens = Vec::new();
                let mut frag_patterns: Vec<u32> = Vec::new();
                let mut ok = true;
                for (fi, f) in frags.iter().enumerate() {
                    let l = Lined {
                        text: f.clone(),
                        line: e.line,
                    };
                    match norm_phrase(&l, "entry part", c, &mut errors) {
                        Some(n) => {
                            frag_tokens.push(n.split(' ').count().min(255) as u8);
                            let pid = pattern_for(
                                &n,
                                Use::Fragment {
                                    gapped: gi,
                                    frag: fi as u8,
                                },
                            );
                            frag_patterns.push(pid as u32);
                        }
                        None => ok = false,
                    }
                }
                if ok {
                    gapped.push(Gapped {
                        category: cid,
                        entry: ei,
                        frag_tokens,
                        prefix_keys: (0..frag_patterns.len())
                            .map(|k| {
                                let key = (frag_patterns[..=k].to_vec(), gaps[..k].to_vec());
                                let next = prefixes.len() as u32;
                                *prefixes.entry(key).or_insert(next)
                            })
                            .collect(),
                        gaps,
                    });
                }
            }
            let mut exception_words: Vec<Vec<String>> = Vec::new();
            for x in &c.exceptions {
                if let Some(n) = norm_phrase(x, "exception", c, &mut errors) {
                    max_exc_tokens = max_exc_tokens.max(n.split(' ').count().min(32) as u8);
                    exception_words.push(n.split(' ').map(str::to_string).collect());
                    pattern_for(&n, Use::Exception { category: cid });
                }
            }
            for (ti, t) in c.templates.iter().enumerate() {
                let entry = (c.entries.len() + ti) as u16;
                match template::expand(&t.text) {
                    Ok(exp) => {
                        let tid = templates.len() as u16;
                        let ends = template::ends(&exp);
                        for w in ends.words.into_iter().chain(ends.pairs) {
                            trigger_map.entry(w).or_default().push(tid);
                        }
                        if ends.always {
                            always_templates.push(tid);
                        } else if ends.digits {
                            digit_templates.push(tid);
                        }
                        let anchored = template::anchored(&exp);
                        runnable.push(anchored.clone());
                        templates.push(Template {
                            category: cid,
                            entry,
                            regex: Regex::new(&anchored).expect("checked at load"),
                        });
                    }
                    Err(reason) => errors.push(LexiconError {
                        file: c.file.clone(),
                        line: t.line,
                        reason: format!("{}: template {:?}: {reason}", c.id, t.text),
                    }),
                }
            }
            // How far past each entry an exception may still reach.
            let conservative = max_exc_tokens.saturating_sub(1);
            let base = if c.directed { 1 } else { 0 };
            let mut hold: Vec<u8> = entry_words
                .iter()
                .map(|w| match w {
                    None => conservative,
                    Some(w) => overhang(w, &exception_words),
                })
                .map(|h: u8| h.max(base))
                .collect();
            hold.extend(std::iter::repeat_n(
                conservative.max(base),
                c.templates.len(),
            ));
            categories.push(Category {
                id: c.id.clone(),
                speaker: c.speaker,
                kind: c.kind,
                tag: c.tag.clone(),
                negatable: c.negatable,
                reportable: c.reportable,
                directed: c.directed,
                vocative: c.vocative,
                hold,
                deferred: c.directed || !c.exceptions.is_empty(),
                source: c.clone(),
            });
        }
        if !errors.is_empty() {
            return Err(LexiconErrors(errors));
        }
        let mut triggers: Vec<(String, Vec<u16>)> = trigger_map.into_iter().collect();
        triggers.sort();
        let mut trigger_items = Vec::new();
        for (w, list) in triggers {
            pattern_for(
                &w,
                Use::Trigger {
                    start: trigger_items.len() as u32,
                    len: list.len() as u16,
                },
            );
            trigger_items.extend(list);
        }
        let mut use_list = Vec::new();
        let pattern_info = patterns
            .iter()
            .zip(&uses)
            .map(|(p, us)| {
                let info = PatternInfo {
                    start: use_list.len() as u32,
                    len: us.len() as u16,
                    tokens: p.trim().split(' ').count().min(255) as u8,
                    passes: us.iter().fold(0u8, |m, u| {
                        m | match u {
                            Use::Cue { .. } | Use::Trigger { .. } => 1,
                            Use::Entry { .. } | Use::Fragment { .. } => 2,
                            Use::Exception { .. } => 4,
                        }
                    }),
                };
                use_list.extend_from_slice(us);
                info
            })
            .collect();
        let dfa = Automaton::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            // Dense transitions for the first four bytes of every pattern: the states
            // nearly every word passes through (1.16 MiB in all instead of 1.03).
            .dense_depth(4)
            .build(&patterns)
            .map_err(|e| {
                LexiconErrors(vec![LexiconError {
                    file: "lexicons".into(),
                    line: 0,
                    reason: e.to_string(),
                }])
            })?;
        let template_count = templates.len();
        let searcher = super::reverse::Searcher::new(&runnable).map_err(|reason| {
            LexiconErrors(vec![LexiconError {
                file: "lexicons".into(),
                line: 0,
                reason,
            }])
        })?;
        Ok(Lexicon {
            searcher,
            version: version_of(sources),
            categories,
            normalizer,
            dfa,
            pattern_count: patterns.len(),
            pattern_info,
            use_list,
            gapped,
            templates,
            trigger_items,
            digit_templates,
            always_templates,
            entry_count,
            template_count,
        })
    }

    /// Heap memory of the compiled automaton, in bytes.
    pub fn automaton_bytes(&self) -> usize {
        use aho_corasick::automaton::Automaton;
        self.dfa.memory_usage()
    }
}
