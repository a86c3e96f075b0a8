//! The streaming matcher: per-call, per-speaker streams over normalised words, with a
//! small carried state between chunks.
//!
//! Each speaker's final segments form one running stream of normalised tokens
//! (`" tok tok | tok "`, `|` a clause end). The stream carries:
//!
//! - the Aho-Corasick DFA state id (4 bytes): entries, entry fragments, exceptions and
//!   modifier cues are whole-word patterns, found at the space that ends their last word;
//! - the progress of gapped entries ("sorry ... for the"), a few slots;
//! - the last modifier cues (negation, reported speech, person and thing targets);
//! - hits still waiting for the words after them (a following "you", an exception that
//!   may still complete, the clause end that makes an insult a vocative);
//! - the pending longest template match;
//! - the normaliser's pending run of single letters or digits;
//! - the keys of the last hits emitted, so that a category reports one span once;
//! - and, beside that, a bounded tail of recent text for templates and quotes.
//!
//! Decisions depend only on the token sequence and on turn ends (another speaker's final
//! segment, or the call's end), never on where a segment was cut: this is what makes the
//! final hits independent of chunking. A partial runs on a copy of its stream and is
//! flushed as if the turn ended: its hits are tentative and replaced by the next partial;
//! the final's hits are authoritative; a re-sent final is ignored.

use std::collections::HashSet;
use std::sync::Arc;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::Anchored;
use serde::{Deserialize, Serialize};

use crate::lexicon::compile::{Cue, PatternInfo, Use};
use crate::lexicon::reverse::SearchCache;
use crate::lexicon::{Lexicon, SpeakerFilter};
use crate::text::{redact, NormState, RedactState, Role, TokenSink};

/// Which coached speaker a stream belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Agent,
    Customer,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Agent => Side::Customer,
            Side::Customer => Side::Agent,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Agent => "agent",
            Side::Customer => "customer",
        }
    }
    fn accepts(self, f: SpeakerFilter) -> bool {
        matches!(
            (self, f),
            (_, SpeakerFilter::Any)
                | (Side::Agent, SpeakerFilter::Agent)
                | (Side::Customer, SpeakerFilter::Customer)
        )
    }
}

/// One lexicon hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    pub side: Side,
    /// Index of the category in [`Lexicon::categories`].
    pub category: u16,
    /// Index of the entry (templates follow the entries) within the category.
    pub entry: u16,
    /// For `directed` categories: aimed at a person (abuse) rather than the situation.
    pub directed: bool,
    /// Token span in the speaker's stream (1-based, inclusive).
    pub start_tok: u32,
    pub end_tok: u32,
    /// The matched words, normalised (card data is redacted before normalisation).
    pub text: String,
}

const GAP_SLOTS: usize = 5;
/// Patterns ending at one word that are read onto the stack (more go to the heap).
const ENDED: usize = 32;
const RECENT_SLOTS: usize = 4;
/// Words after a fragment within which a next fragment can still end (gap + its words).
const GAP_REACH: u32 = 16;
const PENDING_SLOTS: usize = 4;
const TEMPLATE_SLOTS: usize = 2;
const TAIL_BYTES: usize = 256;
/// Most bytes of text tail a stream holds beside its carried state.
pub const MAX_TAIL_BYTES: usize = TAIL_BYTES * 2;
const TEMPLATE_WINDOW: usize = 120;
const NEGATION_REACH: u32 = 4;
const REPORTED_REACH: u32 = 8;
const PERSON_REACH: u32 = 3;

/// Progress of gapped entries: the fragments seen so far, keyed by the prefix they form
/// (entries that start alike share a key, see `Gapped::prefix_keys`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct GapProgress {
    key: u32,
    start: u32,
    end: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    category: u16,
    entry: u16,
    start: u32,
    end: u32,
    /// Words after `end` at which the hit is decided.
    hold: u8,
    /// bit 0: directed by a person cue before; bit 1: a person cue follows;
    /// bit 2: vocative blocked (article or thing cue right before)
    flags: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct TemplatePending {
    template: u16,
    start: u32,
    end: u32,
}

/// The carried state of one speaker stream, without the text tail. Small and `Copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    ac: u32,
    /// Index of the last token (1-based; 0 = none yet).
    tok: u32,
    /// First token of the current clause (hard: punctuation, turn end).
    clause_start: u32,
    /// First token of the current scope for cue rules (clause ends and "but").
    scope_start: u32,
    last_break: bool,
    norm: NormState,
    person: (u32, u32),
    thing_end: u32,
    negation: [u32; 2],
    reported: u32,
    gaps: [GapProgress; GAP_SLOTS],
    gaps_len: u8,
    pending: [Pending; PENDING_SLOTS],
    pending_len: u8,
    templates: [TemplatePending; TEMPLATE_SLOTS],
    templates_len: u8,
    /// The last hits emitted, as (category, length, end) keys: one hit per category and
    /// span, however many entries or templates of the category match it.
    recent: [u64; RECENT_SLOTS],
}

/// One speaker's stream: carried state plus a bounded tail of recent normalised text.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stream {
    side: Side,
    state: StreamState,
    /// Recent normalised text, `" tok tok tok"`; its last token is `state.tok`.
    tail: String,
    /// Scratch space for the templates to try at a word, and for the templates found
    /// there (kept to save allocations).
    #[serde(skip)]
    scratch: Scratch,
    /// Emit modifier cues as hits (for checking modifier examples).
    #[serde(default)]
    emit_cues: bool,
    /// Report only abuse hits (a partial's probe when only urgent hits matter).
    #[serde(default)]
    urgent_only: bool,
}

/// A stream's scratch buffers: reused between words, never copied (a clone starts
/// empty).
#[derive(Debug, Default)]
struct Scratch(Vec<u16>, Vec<(u16, usize)>);

impl Clone for Scratch {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

struct Ctx<'a> {
    lex: &'a Lexicon,
    out: &'a mut Vec<Hit>,
    /// Scratch: the templates to try at the current word.
    candidates: Vec<u16>,
    /// Scratch: the templates that end at the current word, and where.
    starts: Vec<(u16, usize)>,
    /// When set, every word fed is appended here (space-separated).
    words: Option<&'a mut String>,
    /// A cache for template searches, taken from the lexicon at the first one.
    search: Option<SearchCache<'a>>,
}

impl Stream {
    pub fn new(lex: &Lexicon, side: Side) -> Stream {
        let start = lex.dfa.start_state(Anchored::No).expect("unanchored DFA");
        let ac = lex.dfa.next_state(Anchored::No, start, b' ');
        Stream {
            side,
            state: StreamState {
                ac: ac.as_u32(),
                tok: 0,
                clause_start: 1,
                scope_start: 1,
                last_break: true,
                norm: NormState::default(),
                person: (0, 0),
                thing_end: 0,
                negation: [0; 2],
                reported: 0,
                gaps: [GapProgress::default(); GAP_SLOTS],
                gaps_len: 0,
                pending: [Pending::default(); PENDING_SLOTS],
                pending_len: 0,
                templates: [TemplatePending::default(); TEMPLATE_SLOTS],
                templates_len: 0,
                recent: [u64::MAX; RECENT_SLOTS],
            },
            tail: String::with_capacity(TAIL_BYTES * 2),
            scratch: Scratch::default(),
            emit_cues: false,
            urgent_only: false,
        }
    }

    /// Reports modifier cues as hits too (lexicon example checks).
    pub fn with_cues(mut self) -> Stream {
        self.emit_cues = true;
        self
    }

    /// Size of the carried state in bytes (beside the text tail).
    pub fn state_bytes() -> usize {
        std::mem::size_of::<StreamState>()
    }

    /// Whether a flush could emit hits that feeding more text has not (yet).
    pub fn has_pending(&self) -> bool {
        let s = &self.state;
        s.pending_len > 0 || s.templates_len > 0 || s.norm != NormState::default()
    }

    /// Feeds one chunk of (redacted) text; appends the hits decided so far to `out`.
    pub fn feed(&mut self, lex: &Lexicon, text: &str, out: &mut Vec<Hit>) {
        self.feed_words(lex, text, out, None);
    }

    /// [`Stream::feed`], also appending the normalised words to `words`.
    pub fn feed_words(
        &mut self,
        lex: &Lexicon,
        text: &str,
        out: &mut Vec<Hit>,
        words: Option<&mut String>,
    ) {
        self.with_sink(lex, out, words, |norm, sink| {
            lex.normalizer.feed(norm, text, sink)
        });
    }

    /// Runs `f` with the normaliser's state and a sink into this stream.
    fn with_sink(
        &mut self,
        lex: &Lexicon,
        out: &mut Vec<Hit>,
        words: Option<&mut String>,
        f: impl FnOnce(&mut NormState, &mut Sink<'_, '_>),
    ) {
        let mut norm = self.state.norm;
        let Scratch(candidates, starts) = std::mem::take(&mut self.scratch);
        let mut sink = Sink {
            stream: self,
            ctx: Ctx {
                lex,
                out,
                candidates,
                starts,
                words,
                search: None,
            },
        };
        f(&mut norm, &mut sink);
        let candidates = std::mem::take(&mut sink.ctx.candidates);
        let starts = std::mem::take(&mut sink.ctx.starts);
        self.scratch = Scratch(candidates, starts);
        self.state.norm = norm;
    }

    /// Ends the turn: everything pending is decided and emitted.
    pub fn flush(&mut self, lex: &Lexicon, out: &mut Vec<Hit>) {
        self.with_sink(lex, out, None, |norm, sink| {
            lex.normalizer.flush(norm, sink);
            sink.clause_break();
        });
        self.state.gaps_len = 0;
    }

    fn ac_step(&mut self, lex: &Lexicon, bytes: &[u8]) {
        let mut sid = StateID::new(self.state.ac as usize).expect("valid state id");
        for &b in bytes {
            sid = lex.dfa.next_state(Anchored::No, sid, b);
        }
        self.state.ac = sid.as_u32();
    }

    fn push_tail(&mut self, tok: &str) {
        self.tail.push(' ');
        self.tail.push_str(tok);
        if self.tail.len() > MAX_TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            let at = self.tail[cut..].find(' ').map(|p| cut + p).unwrap_or(cut);
            self.tail.drain(..at);
        }
    }

    /// The normalised text of tokens `start..=end`, from the tail (clause ends dropped).
    fn span_text(&self, start: u32, end: u32) -> String {
        // Usually the span is one run of the tail without a clause end: one copy.
        if let Some(s) = self.span_slice(start, end).filter(|s| !s.contains('|')) {
            return s.to_string();
        }
        let mut words: Vec<&str> = Vec::new();
        let mut idx = self.state.tok;
        for w in self.tail.rsplit(' ') {
            if idx < start || idx == 0 {
                break;
            }
            if idx <= end && w != "|" {
                words.push(w);
            }
            idx -= 1;
        }
        words.reverse();
        words.join(" ")
    }

    /// The tail's text of tokens `start..=end`, when all of them are in the tail.
    fn span_slice(&self, start: u32, end: u32) -> Option<&str> {
        if start == 0 || start > end || end > self.state.tok {
            return None;
        }
        let (mut idx, mut hi, mut token_end) = (self.state.tok, None, self.tail.len());
        for (space, _) in self.tail.rmatch_indices(' ') {
            // Token `idx` is `space + 1..token_end`.
            if idx == end {
                hi = Some(token_end);
            }
            if idx == start {
                return Some(&self.tail[space + 1..hi?]);
            }
            token_end = space;
            idx -= 1;
        }
        None
    }

    fn token_at(&self, i: u32) -> Option<&str> {
        if i == 0 || i > self.state.tok {
            return None;
        }
        self.tail.rsplit(' ').nth((self.state.tok - i) as usize)
    }

    fn token(&mut self, ctx: &mut Ctx, tok: &str) {
        if let Some(w) = ctx.words.as_deref_mut() {
            if !w.is_empty() {
                w.push(' ');
            }
            w.push_str(tok);
        }
        self.state.tok += 1;
        self.state.last_break = false;
        let t = self.state.tok;
        self.ac_step(ctx.lex, tok.as_bytes());
        self.ac_step(ctx.lex, b" ");
        self.push_tail(tok);
        let sid = StateID::new(self.state.ac as usize).expect("valid state id");
        let mut candidates = std::mem::take(&mut ctx.candidates);
        candidates.clear();
        // The patterns that end here, read once for the three passes over them.
        let mut ended = [PatternInfo::default(); ENDED];
        let mut many = Vec::new();
        let (ended, passes) = if ctx.lex.dfa.is_match(sid) {
            let n = ctx.lex.dfa.match_len(sid);
            let list: &mut [PatternInfo] = if n <= ENDED {
                &mut ended[..n]
            } else {
                many.resize(n, PatternInfo::default());
                &mut many
            };
            let mut passes = 0;
            for (i, e) in list.iter_mut().enumerate() {
                *e = ctx.lex.pattern_info[ctx.lex.dfa.match_pattern(sid, i).as_usize()];
                passes |= e.passes;
            }
            (&*list, passes)
        } else {
            (&[][..], 0)
        };
        if passes & 0b011 != 0 {
            self.on_matches(ctx, ended, t, 0..2, &mut candidates);
        }
        if tok.bytes().any(|b| b.is_ascii_digit()) {
            candidates.extend_from_slice(&ctx.lex.digit_templates);
        }
        candidates.extend_from_slice(&ctx.lex.always_templates);
        if !candidates.is_empty() {
            candidates.sort_unstable();
            candidates.dedup();
            self.templates(ctx, t, &candidates);
        }
        if passes & 0b100 != 0 {
            // Exceptions last: they must see every hit that ends on this word.
            self.on_matches(ctx, ended, t, 2..3, &mut candidates);
        }
        ctx.candidates = candidates;
        self.decide_due(ctx, t);
    }

    fn clause_break(&mut self, ctx: &mut Ctx) {
        if self.state.last_break {
            return;
        }
        // Decide pending template matches and hits: nothing reaches across a clause end.
        self.flush_templates(ctx, u32::MAX);
        let last = self.state.tok;
        while self.state.pending_len > 0 {
            let p = self.take_pending(0);
            self.decide(ctx, p, p.end == last);
        }
        self.state.tok += 1;
        self.state.last_break = true;
        self.ac_step(ctx.lex, b"| ");
        self.push_tail("|");
        self.state.clause_start = self.state.tok + 1;
        self.state.scope_start = self.state.tok + 1;
        self.state.gaps_len = 0;
    }

    /// Handles the patterns ending at token `t`, by pass: 0 cues and template triggers,
    /// 1 entries, 2 exceptions (after templates, so that an exception ending on the same
    /// word as a hit sees the hit).
    fn on_matches(
        &mut self,
        ctx: &mut Ctx,
        ended: &[PatternInfo],
        t: u32,
        passes: std::ops::Range<u8>,
        candidates: &mut Vec<u16>,
    ) {
        let lex = ctx.lex;
        for pass in passes {
            for &info in ended {
                if info.passes & 1 << pass == 0 {
                    continue;
                }
                let len = info.tokens as u32;
                let start = t + 1 - len.min(t);
                for &u in info.uses(lex) {
                    match (pass, u) {
                        (0, Use::Cue { cue, category }) => {
                            self.on_cue(ctx, cue, category, start, t)
                        }
                        (1, Use::Entry { category, entry }) => {
                            self.on_hit(ctx, category, entry, start, t)
                        }
                        (1, Use::Fragment { gapped, frag }) => {
                            self.on_fragment(ctx, gapped, frag, start, t)
                        }
                        (2, Use::Exception { category }) => {
                            self.on_exception(lex, category, start, t)
                        }
                        (0, Use::Trigger { start, len }) => candidates.extend_from_slice(
                            &lex.trigger_items[start as usize..][..len as usize],
                        ),
                        _ => {}
                    }
                }
            }
        }
    }

    fn on_cue(&mut self, ctx: &mut Ctx, cue: Cue, category: u16, start: u32, end: u32) {
        let s = &mut self.state;
        match cue {
            Cue::Negation => {
                if s.negation[1] != end {
                    s.negation = [s.negation[1], end];
                }
            }
            Cue::Reported => s.reported = end,
            Cue::Person => {
                if s.person.1 != end || s.person.0 > start {
                    s.person = (start, end);
                }
                for p in s.pending[..s.pending_len as usize].iter_mut() {
                    if p.end + 1 == start {
                        p.flags |= 2;
                    }
                }
            }
            Cue::Thing => s.thing_end = end,
            Cue::ClauseBreak => s.scope_start = end + 1,
        }
        if self.emit_cues
            && self
                .side
                .accepts(ctx.lex.categories[category as usize].speaker)
        {
            let text = self.span_text(start, end);
            ctx.out.push(Hit {
                side: self.side,
                category,
                entry: 0,
                directed: false,
                start_tok: start,
                end_tok: end,
                text,
            });
        }
    }

    fn on_fragment(&mut self, ctx: &mut Ctx, gapped: u16, frag: u8, start: u32, end: u32) {
        let g = &ctx.lex.gapped[gapped as usize];
        if !self
            .side
            .accepts(ctx.lex.categories[g.category as usize].speaker)
        {
            return;
        }
        if frag == 0 {
            self.record_gap(g.prefix_keys[0], start, end);
            return;
        }
        let prev_key = g.prefix_keys[frag as usize - 1];
        let gap = g.gaps[frag as usize - 1] as u32;
        let clause = self.state.clause_start;
        let found = self.state.gaps[..self.state.gaps_len as usize]
            .iter()
            .rev()
            .find(|p| {
                p.key == prev_key && p.end < start && start - p.end - 1 <= gap && p.start >= clause
            })
            .copied();
        let Some(p) = found else { return };
        if frag as usize + 1 == g.frag_tokens.len() {
            let (category, entry) = (g.category, g.entry);
            self.on_hit(ctx, category, entry, p.start, end);
        } else {
            self.record_gap(g.prefix_keys[frag as usize], p.start, end);
        }
    }

    fn record_gap(&mut self, key: u32, start: u32, end: u32) {
        // Drop slots that no fragment can continue any more, and an older copy of this key.
        let tok = self.state.tok;
        let mut i = 0;
        while i < self.state.gaps_len as usize {
            let p = self.state.gaps[i];
            if p.key == key || tok.saturating_sub(p.end) > GAP_REACH {
                self.remove_gap(i);
            } else {
                i += 1;
            }
        }
        if self.state.gaps_len as usize == GAP_SLOTS {
            self.remove_gap(0);
        }
        let n = self.state.gaps_len as usize;
        self.state.gaps[n] = GapProgress { key, start, end };
        self.state.gaps_len += 1;
    }

    fn remove_gap(&mut self, i: usize) {
        let n = self.state.gaps_len as usize;
        self.state.gaps.copy_within(i + 1..n, i);
        self.state.gaps_len -= 1;
    }

    fn on_exception(&mut self, lex: &Lexicon, category: u16, start: u32, end: u32) {
        let mut i = 0;
        while i < self.state.templates_len as usize {
            let tp = self.state.templates[i];
            let covered = tp.start >= start && tp.end <= end;
            if covered && lex.templates[tp.template as usize].category == category {
                let n = self.state.templates_len as usize;
                self.state.templates.copy_within(i + 1..n, i);
                self.state.templates_len -= 1;
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < self.state.pending_len as usize {
            let p = self.state.pending[i];
            if p.category == category && p.start >= start && p.end <= end {
                self.take_pending(i);
            } else {
                i += 1;
            }
        }
    }

    fn within(cue_end: u32, start: u32, reach: u32, scope: u32) -> bool {
        cue_end != 0 && cue_end < start && cue_end >= scope && start - cue_end - 1 <= reach
    }

    fn on_hit(&mut self, ctx: &mut Ctx, category: u16, entry: u16, start: u32, end: u32) {
        let cat = &ctx.lex.categories[category as usize];
        if !self.side.accepts(cat.speaker)
            || cat.kind.is_modifier()
            || (self.urgent_only && !cat.kind.is_abuse())
        {
            return;
        }
        let s = &self.state;
        let scope = s.scope_start;
        if cat.negatable
            && s.negation
                .iter()
                .any(|&n| Self::within(n, start, NEGATION_REACH, scope))
        {
            return;
        }
        if cat.reportable && Self::within(s.reported, start, REPORTED_REACH, scope) {
            return;
        }
        if !cat.deferred {
            self.emit(ctx, category, entry, false, start, end);
            return;
        }
        let mut flags = 0u8;
        if cat.directed {
            let (ps, pe) = s.person;
            let before = pe != 0
                && ps >= scope
                && pe <= end
                && pe + PERSON_REACH + 1 >= start
                && !(s.thing_end > pe && s.thing_end < start);
            if before {
                flags |= 1;
            }
            let prev = start.checked_sub(1).and_then(|i| self.token_at(i));
            if (s.thing_end != 0 && s.thing_end + 1 == start) || matches!(prev, Some("a" | "an")) {
                flags |= 4;
            }
        }
        if self.state.pending_len as usize == PENDING_SLOTS {
            let p = self.take_pending(0);
            self.decide(ctx, p, false);
        }
        let n = self.state.pending_len as usize;
        self.state.pending[n] = Pending {
            category,
            entry,
            start,
            end,
            hold: cat.hold.get(entry as usize).copied().unwrap_or(0),
            flags,
        };
        self.state.pending_len += 1;
    }

    fn take_pending(&mut self, i: usize) -> Pending {
        let p = self.state.pending[i];
        let n = self.state.pending_len as usize;
        self.state.pending.copy_within(i + 1..n, i);
        self.state.pending_len -= 1;
        p
    }

    fn decide_due(&mut self, ctx: &mut Ctx, t: u32) {
        self.flush_templates(ctx, t);
        let mut i = 0;
        while i < self.state.pending_len as usize {
            let p = self.state.pending[i];
            if p.end + p.hold as u32 <= t {
                let p = self.take_pending(i);
                self.decide(ctx, p, false);
            } else {
                i += 1;
            }
        }
    }

    fn decide(&mut self, ctx: &mut Ctx, p: Pending, at_clause_end: bool) {
        let cat = &ctx.lex.categories[p.category as usize];
        let directed = cat.directed
            && (p.flags & 1 != 0
                || p.flags & 2 != 0
                || (cat.vocative && at_clause_end && p.flags & 4 == 0));
        self.emit(ctx, p.category, p.entry, directed, p.start, p.end);
    }

    /// Emits a hit, once per category and span: two entries or templates of one category
    /// that match the same words are one hit (the first, in lexicon order of decision).
    fn emit(
        &mut self,
        ctx: &mut Ctx,
        category: u16,
        entry: u16,
        directed: bool,
        start: u32,
        end: u32,
    ) {
        let key = (category as u64) << 48 | ((end - start) as u64 & 0xffff) << 32 | end as u64;
        if self.state.recent.contains(&key) {
            return;
        }
        self.state.recent.copy_within(0..RECENT_SLOTS - 1, 1);
        self.state.recent[0] = key;
        let text = self.span_text(start, end);
        ctx.out.push(Hit {
            side: self.side,
            category,
            entry,
            directed,
            start_tok: start,
            end_tok: end,
            text,
        });
    }

    fn templates(&mut self, ctx: &mut Ctx, t: u32, candidates: &[u16]) {
        let lex = ctx.lex;
        let mut from = self.tail.len().saturating_sub(TEMPLATE_WINDOW);
        while !self.tail.is_char_boundary(from) {
            from += 1;
        }
        let wstart = match self.tail[from..].find(' ') {
            Some(p) if from > 0 => from + p,
            _ => from,
        };
        let window = &self.tail[wstart..];
        let mut found: Vec<(usize, u32)> = Vec::new();
        let mut all = std::mem::take(&mut ctx.starts);
        all.clear();
        let (mut walked, mut gave_up) = (false, false);
        for &ti in candidates {
            let ti = ti as usize;
            let tpl = &lex.templates[ti];
            if self.urgent_only && !lex.categories[tpl.category as usize].kind.is_abuse() {
                continue;
            }
            if !self
                .side
                .accepts(lex.categories[tpl.category as usize].speaker)
            {
                continue;
            }
            // One walk back over the window finds every template that ends here.
            if !walked {
                walked = true;
                let cache = ctx.search.get_or_insert_with(|| lex.searcher.cache());
                gave_up = lex.searcher.all_starts(cache, window, &mut all).is_err();
            }
            let start = if gave_up {
                tpl.regex.find(window).map(|m| m.start())
            } else {
                all.iter().find(|(p, _)| *p as usize == ti).map(|x| x.1)
            };
            let Some(start) = start else {
                continue;
            };
            let text = window[start..].trim_start();
            let ntok = text.split(' ').count() as u32;
            let start = t + 1 - ntok.min(t);
            if start >= self.state.clause_start {
                found.push((ti, start));
            }
        }
        ctx.starts = all;
        for (ti, start) in found {
            let n = self.state.templates_len as usize;
            if let Some(tp) = self.state.templates[..n]
                .iter_mut()
                .find(|tp| tp.template as usize == ti && start <= tp.end)
            {
                tp.start = tp.start.min(start);
                tp.end = t;
                continue;
            }
            if n == TEMPLATE_SLOTS {
                let tp = self.state.templates[0];
                self.state.templates.copy_within(1..n, 0);
                self.state.templates_len -= 1;
                self.emit_template(ctx, tp);
            }
            let n = self.state.templates_len as usize;
            self.state.templates[n] = TemplatePending {
                template: ti as u16,
                start,
                end: t,
            };
            self.state.templates_len += 1;
        }
    }

    /// Emits template matches that the newest token (`t`) did not extend.
    fn flush_templates(&mut self, ctx: &mut Ctx, t: u32) {
        let mut i = 0;
        while i < self.state.templates_len as usize {
            let tp = self.state.templates[i];
            if tp.end < t {
                let n = self.state.templates_len as usize;
                self.state.templates.copy_within(i + 1..n, i);
                self.state.templates_len -= 1;
                self.emit_template(ctx, tp);
            } else {
                i += 1;
            }
        }
    }

    fn emit_template(&mut self, ctx: &mut Ctx, tp: TemplatePending) {
        let tpl = &ctx.lex.templates[tp.template as usize];
        self.on_hit(ctx, tpl.category, tpl.entry, tp.start, tp.end);
    }
}

struct Sink<'a, 'b> {
    stream: &'a mut Stream,
    ctx: Ctx<'b>,
}

impl TokenSink for Sink<'_, '_> {
    fn token(&mut self, tok: &str) {
        self.stream.token(&mut self.ctx, tok);
    }
    fn clause_break(&mut self) {
        self.stream.clause_break(&mut self.ctx);
    }
}

/// What one transcript message produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    /// The redacted text of the segment.
    pub text: String,
    /// Authoritative hits (finals), or tentative hits (partials). A final may also carry
    /// hits of the other speaker's turn, which this final ended (`Hit::side`).
    pub hits: Vec<Hit>,
    /// Final only: hits of this segment that wait for the next words of the turn (a
    /// following "you", an exception still possible). They become authoritative, or
    /// not, with later text; a consumer should not treat them as contradicted.
    pub provisional: Vec<Hit>,
    /// Final only: the segment's normalised words, space-separated.
    pub words: String,
}

/// What a partial reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partials {
    /// Every hit, tentative.
    #[default]
    All,
    /// Only abuse hits: for a consumer that acts on partials only when it is urgent
    /// (the coach), which saves matching templates again on every partial.
    Urgent,
}

/// Per-call matching: redaction state, one stream per coached speaker, closed segments.
/// Serialisable without its lexicon; [`CallMatcher::set_lexicon`] gives it back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallMatcher {
    #[serde(skip, default = "crate::lexicon::compile::empty_lexicon")]
    lex: Arc<Lexicon>,
    agent: Stream,
    customer: Stream,
    last_final: Option<Side>,
    closed: HashSet<String>,
    redact: RedactState,
    #[serde(default)]
    partials: Partials,
}

impl CallMatcher {
    pub fn new(lex: Arc<Lexicon>) -> CallMatcher {
        let agent = Stream::new(&lex, Side::Agent);
        let customer = Stream::new(&lex, Side::Customer);
        CallMatcher {
            lex,
            agent,
            customer,
            last_final: None,
            closed: HashSet::new(),
            redact: RedactState::default(),
            partials: Partials::All,
        }
    }

    fn stream(&mut self, side: Side) -> &mut Stream {
        match side {
            Side::Agent => &mut self.agent,
            Side::Customer => &mut self.customer,
        }
    }

    /// Chooses what partials report (default: every hit).
    pub fn set_partials(&mut self, partials: Partials) {
        self.partials = partials;
    }

    /// Gives a restored matcher its lexicon (the one it was created with).
    pub fn set_lexicon(&mut self, lex: Arc<Lexicon>) {
        self.lex = lex;
    }

    /// Whether this segment's final has been processed (later messages for it are ignored).
    pub fn is_closed(&self, segment_id: &str) -> bool {
        self.closed.contains(segment_id)
    }

    /// Feeds one transcript message. `None` when the segment is already closed.
    pub fn feed(
        &mut self,
        segment_id: &str,
        side: Side,
        text: &str,
        is_final: bool,
    ) -> Option<Update> {
        if self.closed.contains(segment_id) {
            return None;
        }
        let role = if side == Side::Customer {
            Role::Customer
        } else {
            Role::Other
        };
        let lex = Arc::clone(&self.lex);
        if !is_final {
            let mut st = self.redact;
            let text = redact(text, role, false, &mut st).into_owned();
            let urgent = self.partials == Partials::Urgent;
            let mut probe = self.stream(side).clone();
            probe.urgent_only = urgent;
            let mut hits = Vec::new();
            probe.feed(&lex, &text, &mut hits);
            probe.flush(&lex, &mut hits);
            return Some(Update {
                text,
                hits,
                provisional: Vec::new(),
                words: String::new(),
            });
        }
        self.closed.insert(segment_id.to_string());
        let mut hits = Vec::new();
        if self.last_final == Some(side.other()) {
            self.stream(side.other()).flush(&lex, &mut hits);
            if side == Side::Agent {
                self.redact.end_customer_turn();
            }
        }
        self.last_final = Some(side);
        let text = redact(text, role, true, &mut self.redact).into_owned();
        let stream = self.stream(side);
        let mut words = String::with_capacity(text.len() + 16);
        stream.feed_words(&lex, &text, &mut hits, Some(&mut words));
        let mut provisional = Vec::new();
        if stream.has_pending() {
            let mut probe = stream.clone();
            probe.flush(&lex, &mut provisional);
        }
        Some(Update {
            text,
            hits,
            provisional,
            words,
        })
    }

    /// Ends the call: both turns end, everything pending is decided.
    pub fn finish(&mut self) -> Vec<Hit> {
        let lex = Arc::clone(&self.lex);
        let mut hits = Vec::new();
        // The speaker who spoke last ends last.
        let order = match self.last_final {
            Some(Side::Agent) => [Side::Customer, Side::Agent],
            _ => [Side::Agent, Side::Customer],
        };
        for side in order {
            self.stream(side).flush(&lex, &mut hits);
        }
        hits
    }
}
