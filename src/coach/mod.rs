//! The coach: one [`Session`] per call turns transcript events into the nudges, boundary
//! transitions and call record of `product.md`, in the wire format of `protocol.md`.
//!
//! Pure: `feed(event) -> outputs`, no clock (time is the transcript's call time), no I/O.
//! Counters and the record count a segment once, from its final text; partials may raise
//! the urgent boundary nudges early, and a final that contradicts them retracts them.

pub mod amount;
pub mod boundary;
pub mod config;
mod nudges;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::lexicon::{Kind, Lexicon};
use crate::matcher::{CallMatcher, Hit, Side};
use crate::protocol::*;
use amount::parse_amount;
use boundary::{Change, Counter};
pub use config::Policy;
use serde::{Deserialize, Serialize};

/// A saved session that could not be restored.
#[derive(Debug, thiserror::Error)]
#[error("cannot restore session: {0}")]
pub struct RestoreError(pub String);

/// An active nudge and what is needed to clear it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Active {
    nudge: Nudge,
    /// Raised from a partial of this segment, not yet confirmed by its final.
    tentative: Option<String>,
    /// One-shot nudges and `let_them_vent` clear themselves at this call time.
    clear_at: Option<u64>,
    /// Agent turn in which it was raised (`stay_composed` clears on a later turn).
    turn: u32,
    record: usize,
}

/// What the agent's current turn has done so far; decided on at the turn's end, so that
/// where a speech engine cut the turn into segments does not matter.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct AgentTurn {
    offered: BTreeSet<RemedyKind>,
    completed: bool,
    amount: Option<Cost>,
    defensive: bool,
    generic_apology: bool,
    specific_apology: bool,
    vague: bool,
    timeframe: bool,
    closing: bool,
    /// Last word of the latest summary in this turn (remedies named in it are not offers).
    summary_end: Option<u32>,
    words: usize,
    ms: u64,
}

/// The last final segment of one speaker: what evidence quotes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Segment {
    id: String,
    text: String,
    at_ms: u64,
}

/// The state of one call. Its whole state serialises ([`Session::save`]) and restores
/// with the same lexicon ([`Session::restore`]).
#[derive(Serialize, Deserialize)]
pub struct Session {
    policy: Policy,
    #[serde(skip, default = "crate::lexicon::compile::empty_lexicon")]
    lex: Arc<Lexicon>,
    lexicon_version: String,
    matcher: CallMatcher,
    call_id: String,
    tenant: Option<String>,
    agent_id: Option<String>,
    started_at: Option<String>,
    currency: String,
    authority_limit: f64,
    now: u64,
    ended: bool,
    next_id: u32,
    active: Vec<Active>,
    cleared_at: BTreeMap<NudgeKind, u64>,
    nudges: Vec<NudgeRecord>,
    boundary: Counter,
    last_final: Option<Side>,
    last_segment: [Segment; 2],
    customer_turn: u32,
    agent_turn: u32,
    incident_turn: Option<u32>,
    /// The span of the customer's current turn so far (partials included): start, end.
    customer_span: Option<(u64, u64)>,
    turn: AgentTurn,
    /// Customer words the agent has used back.
    shared_words: BTreeSet<String>,
    temperature: f64,
    temperature_at: u64,
    validated: bool,
    apologized: bool,
    open_questions: u32,
    summarized: bool,
    asked_outcome: bool,
    affirmations: u32,
    customer_words: BTreeSet<String>,
    mirrored: bool,
    offered: Vec<RemedyKind>,
    last_offered: Option<RemedyKind>,
    /// The customer has raised an issue (complaint, frustration, demand).
    issue_raised: bool,
    agreed: Option<RemedyKind>,
    timeframe: Option<String>,
    /// The timeframe was given with or after a remedy offer.
    timeframe_with_offer: bool,
    confirmation: Option<String>,
    completed_step: bool,
    cost: Option<Cost>,
    cost_completed: bool,
    satisfaction_checked: bool,
    complaint: Complaint,
    escalated: bool,
    escalation_reasons: Vec<EscalationReason>,
    turn_refund_demand: bool,
    turn_max_amount: f64,
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Agent => 0,
        Side::Customer => 1,
    }
}

fn role_of(side: Side) -> Role {
    match side {
        Side::Agent => Role::Agent,
        Side::Customer => Role::Customer,
    }
}

fn remedy_of(tag: Option<&str>) -> Option<RemedyKind> {
    RemedyKind::parse(tag?)
}

/// A set of lexicon kinds, as bits (the kinds of one segment's hits).
#[derive(Clone, Copy, Default)]
struct KindSet(u128);

impl KindSet {
    fn with(self, kind: Kind) -> KindSet {
        KindSet(self.0 | 1 << kind_index(kind))
    }
    fn contains(&self, kind: &Kind) -> bool {
        self.0 & 1 << kind_index(*kind) != 0
    }
}

fn kind_index(kind: Kind) -> usize {
    // A field-less enum: its discriminants are 0, 1, 2, … (a test holds them under 128).
    kind as usize
}

/// Content words are at least this long, in lower-case letters, and not stop words.
const CONTENT_WORD_LEN: usize = 5;

fn is_content_word(w: &str) -> bool {
    w.len() >= CONTENT_WORD_LEN
        && w.bytes().all(|b| b.is_ascii_lowercase())
        && STOP_WORDS.binary_search(&w).is_err()
}

/// Sorted (a test holds it so), for a binary search.
const STOP_WORDS: &[&str] = &[
    "about",
    "actually",
    "after",
    "again",
    "already",
    "always",
    "anything",
    "basically",
    "because",
    "before",
    "being",
    "could",
    "didn't",
    "doesn't",
    "every",
    "everything",
    "going",
    "gonna",
    "great",
    "have",
    "just",
    "like",
    "literally",
    "maybe",
    "never",
    "nothing",
    "okay",
    "other",
    "please",
    "really",
    "right",
    "should",
    "something",
    "sorry",
    "still",
    "thank",
    "thanks",
    "that",
    "their",
    "there",
    "these",
    "thing",
    "think",
    "this",
    "those",
    "today",
    "what",
    "when",
    "where",
    "which",
    "while",
    "with",
    "would",
    "yeah",
    "you're",
];

impl Session {
    pub fn new(lex: Arc<Lexicon>, policy: Policy, call_id: &str) -> Session {
        let boundary = Counter::new(policy.warnings_allowed);
        let mut matcher = CallMatcher::new(Arc::clone(&lex));
        // The coach acts on partials only for abuse (the boundary nudges).
        matcher.set_partials(crate::matcher::Partials::Urgent);
        Session {
            matcher,
            lexicon_version: lex.version.clone(),
            lex,
            call_id: call_id.to_string(),
            tenant: None,
            agent_id: None,
            started_at: None,
            currency: "USD".into(),
            authority_limit: policy.authority_limit,
            policy,
            now: 0,
            ended: false,
            next_id: 0,
            active: Vec::new(),
            cleared_at: BTreeMap::new(),
            nudges: Vec::new(),
            boundary,
            last_final: None,
            last_segment: Default::default(),
            customer_turn: 0,
            agent_turn: 0,
            incident_turn: None,
            customer_span: None,
            turn: AgentTurn::default(),
            shared_words: BTreeSet::new(),
            temperature: 0.2,
            temperature_at: 0,
            validated: false,
            apologized: false,
            open_questions: 0,
            summarized: false,
            asked_outcome: false,
            affirmations: 0,
            customer_words: BTreeSet::new(),
            mirrored: false,
            offered: Vec::new(),
            last_offered: None,
            issue_raised: false,
            agreed: None,
            timeframe: None,
            timeframe_with_offer: false,
            confirmation: None,
            completed_step: false,
            cost: None,
            cost_completed: false,
            satisfaction_checked: false,
            complaint: Complaint::default(),
            escalated: false,
            escalation_reasons: Vec::new(),
            turn_refund_demand: false,
            turn_max_amount: 0.0,
        }
    }

    /// The session's whole state as JSON.
    pub fn save(&self) -> String {
        serde_json::to_string(self).expect("session state serialises")
    }

    /// A session from [`Session::save`]'s JSON, with the lexicon it was coached with.
    pub fn restore(state: &str, lex: Arc<Lexicon>) -> Result<Session, RestoreError> {
        let mut s: Session =
            serde_json::from_str(state).map_err(|e| RestoreError(e.to_string()))?;
        if s.lexicon_version != lex.version {
            return Err(RestoreError(format!(
                "the session was coached with lexicon {}, not {}",
                s.lexicon_version, lex.version
            )));
        }
        s.matcher.set_lexicon(Arc::clone(&lex));
        s.lex = lex;
        Ok(s)
    }

    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The tenant the call belongs to, for its record (a `start` naming one overrides).
    pub fn set_tenant(&mut self, tenant: &str) {
        self.tenant = Some(tenant.to_string());
    }

    /// The redacted text of a final segment just fed (for timelines): the coached
    /// speakers' as the matcher redacted it, other roles' with card numbers redacted.
    pub fn redacted(&self, segment_id: &str, raw: &str) -> String {
        match self.last_segment.iter().find(|s| s.id == segment_id) {
            Some(s) => s.text.clone(),
            None => {
                crate::text::redact(raw, crate::text::Role::Other, true, &mut Default::default())
                    .into_owned()
            }
        }
    }

    /// Feeds one platform message; returns the coaching messages it caused, in order.
    pub fn feed(&mut self, msg: &Inbound) -> Vec<Outbound> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match msg {
            Inbound::Start(s) => {
                self.call_id = s.call_id.clone();
                self.tenant = s.tenant.clone();
                self.agent_id = s.agent_id.clone();
                self.started_at = s.started_at.clone();
                if let Some(c) = &s.currency {
                    self.currency = c.to_ascii_uppercase();
                }
                if let Some(l) = s.authority_limit {
                    self.authority_limit = l;
                }
            }
            Inbound::Transcript(t) => self.transcript(t, &mut out),
            Inbound::End(e) => self.end(e.reason, &mut out),
        }
        out
    }

    // ------------------------------------------------------------------ time

    fn advance(&mut self, at: u64, out: &mut Vec<Outbound>) {
        self.now = self.now.max(at);
        // Temperature falls with call time: 0.01 for every 10 s.
        let elapsed = self.now.saturating_sub(self.temperature_at) as f64;
        self.temperature = (self.temperature - elapsed / 10_000.0 * 0.01).max(0.0);
        self.temperature_at = self.now;
        let due: Vec<NudgeKind> = self
            .active
            .iter()
            .filter(|a| a.clear_at.is_some_and(|t| t <= self.now))
            .map(|a| a.nudge.kind)
            .collect();
        for kind in due {
            let reason = if kind == NudgeKind::LetThemVent {
                ClearReason::Satisfied
            } else {
                ClearReason::Expired
            };
            self.clear(kind, reason, out);
        }
    }

    fn heat(&mut self, delta: f64) {
        self.temperature = (self.temperature + delta).clamp(0.0, 1.0);
    }

    fn agitated(&self) -> bool {
        self.temperature >= self.policy.agitated_at
    }

    // ------------------------------------------------------------------ nudges

    fn is_active(&self, kind: NudgeKind) -> bool {
        self.active.iter().any(|a| a.nudge.kind == kind)
    }

    fn raise(&mut self, kind: NudgeKind, side: Side, out: &mut Vec<Outbound>) -> bool {
        let seg = self.last_segment[side_index(side)].clone();
        self.raise_with(kind, side, seg, None, out)
    }

    fn raise_with(
        &mut self,
        kind: NudgeKind,
        side: Side,
        seg: Segment,
        tentative: Option<String>,
        out: &mut Vec<Outbound>,
    ) -> bool {
        if self.is_active(kind) {
            return false;
        }
        if !nudges::is_boundary(kind) {
            if let Some(&at) = self.cleared_at.get(&kind) {
                if self.now < at + self.policy.cooldown_ms {
                    return false;
                }
            }
        }
        self.next_id += 1;
        let (priority, text) = nudges::describe(kind);
        let nudge = Nudge {
            id: format!("n-{}", self.next_id),
            kind,
            priority,
            text: text.to_string(),
            evidence: Evidence {
                speaker: role_of(side),
                segment_id: seg.id,
                quote: seg.text,
                at_ms: seg.at_ms,
            },
            at_ms: self.now,
        };
        let clear_at = nudges::one_shot(kind).then_some(self.now + self.policy.display_ms);
        self.nudges.push(NudgeRecord {
            id: nudge.id.clone(),
            kind,
            raised_at_ms: self.now,
            cleared_at_ms: None,
            clear_reason: None,
        });
        self.active.push(Active {
            nudge: nudge.clone(),
            tentative,
            clear_at,
            turn: self.agent_turn,
            record: self.nudges.len() - 1,
        });
        out.push(Outbound::Nudge(nudge));
        true
    }

    fn clear(&mut self, kind: NudgeKind, reason: ClearReason, out: &mut Vec<Outbound>) {
        let Some(i) = self.active.iter().position(|a| a.nudge.kind == kind) else {
            return;
        };
        let a = self.active.remove(i);
        let rec = &mut self.nudges[a.record];
        rec.cleared_at_ms = Some(self.now);
        rec.clear_reason = Some(reason);
        if reason != ClearReason::Retracted {
            self.cleared_at.insert(kind, self.now);
        }
        out.push(Outbound::NudgeCleared(NudgeCleared {
            id: a.nudge.id,
            kind,
            reason,
            at_ms: self.now,
        }));
    }

    fn boundary_msg(&self, out: &mut Vec<Outbound>) {
        let b = &self.boundary;
        out.push(Outbound::Boundary(Boundary {
            state: b.state(),
            abuse_incidents: b.abuse_incidents,
            warnings_given: b.warnings_given,
            warnings_allowed: b.warnings_allowed,
            at_ms: self.now,
        }));
    }

    /// The boundary nudge that the counter's state calls for.
    fn boundary_nudges(&mut self, out: &mut Vec<Outbound>) {
        let b = &self.boundary;
        let want = if b.terminated {
            None
        } else if b.permitted {
            Some(NudgeKind::TerminationPermitted)
        } else if b.due && b.warnings_given == 0 {
            Some(NudgeKind::FirstBoundaryWarningDue)
        } else if b.due {
            Some(NudgeKind::SecondBoundaryWarningDue)
        } else {
            None
        };
        for kind in [
            NudgeKind::FirstBoundaryWarningDue,
            NudgeKind::SecondBoundaryWarningDue,
        ] {
            if Some(kind) != want && self.is_active(kind) {
                self.clear(kind, ClearReason::Satisfied, out);
            }
        }
        if let Some(kind) = want {
            if let Some(a) = self.active.iter_mut().find(|a| a.nudge.kind == kind) {
                a.tentative = None;
            } else {
                self.raise(kind, Side::Customer, out);
            }
        }
    }

    // ------------------------------------------------------------------ transcript

    fn transcript(&mut self, t: &Transcript, out: &mut Vec<Outbound>) {
        let at = t.end_ms.or(t.start_ms).unwrap_or(self.now);
        let Some(side) = crate::replay::side_of(t.speaker) else {
            self.advance(at, out);
            return;
        };
        if self.matcher.is_closed(&t.segment_id) {
            return;
        }
        self.advance(at, out);
        if side == Side::Customer {
            let start = t.start_ms.unwrap_or(at);
            self.customer_span = Some(match self.customer_span {
                Some((s, e)) => (s.min(start), e.max(at)),
                None => (start, at),
            });
        }
        if !t.is_final {
            self.partial(t, side, out);
            return;
        }
        let Some(update) = self.matcher.feed(&t.segment_id, side, &t.text, true) else {
            return;
        };
        let (other, mine): (Vec<Hit>, Vec<Hit>) =
            update.hits.into_iter().partition(|h| h.side != side);
        let turn_change = self.last_final == Some(side.other());
        if side == Side::Agent {
            self.overlap(t, at, out);
        }
        // Hits of the turn this final ended belong to that turn.
        self.hits(side.other(), &other, out);
        if turn_change {
            self.turn_end(side.other(), out);
        }
        match side {
            Side::Customer if turn_change || self.last_final.is_none() => self.customer_turn += 1,
            Side::Agent if turn_change || self.last_final.is_none() => self.agent_turn += 1,
            _ => {}
        }
        self.last_final = Some(side);
        if side == Side::Agent {
            self.agent_turn_words(t, &update.text, &update.words);
        } else {
            self.learn_words(&update.words);
        }
        let seg = &mut self.last_segment[side_index(side)];
        seg.id.clear();
        seg.id.push_str(&t.segment_id);
        seg.text = update.text;
        seg.at_ms = at;
        self.hits(side, &mine, out);
        // A boundary nudge raised from this segment's partials that the final (and the
        // words still pending) does not bear out is withdrawn.
        let confirmed = mine
            .iter()
            .chain(&update.provisional)
            .any(|h| self.is_abuse(h));
        let retract: Vec<NudgeKind> = self
            .active
            .iter()
            .filter(|a| a.tentative.as_deref() == Some(t.segment_id.as_str()) && !confirmed)
            .map(|a| a.nudge.kind)
            .collect();
        for kind in retract {
            self.clear(kind, ClearReason::Retracted, out);
        }
    }

    /// A partial can only raise the boundary warning that the next abuse incident would
    /// make due; when none could be raised, it is not even matched.
    fn partial(&mut self, t: &Transcript, side: Side, out: &mut Vec<Outbound>) {
        let b = &self.boundary;
        let idle = b.terminated || b.permitted || b.due || b.warnings_given >= b.warnings_allowed;
        let kind = if side != Side::Customer || idle {
            return;
        } else if b.warnings_given == 0 {
            NudgeKind::FirstBoundaryWarningDue
        } else {
            NudgeKind::SecondBoundaryWarningDue
        };
        let Some(update) = self.matcher.feed(&t.segment_id, side, &t.text, false) else {
            return;
        };
        if !update.hits.iter().any(|h| self.is_abuse(h)) {
            return;
        }
        let seg = Segment {
            id: t.segment_id.clone(),
            text: update.text,
            at_ms: self.now,
        };
        self.raise_with(kind, Side::Customer, seg, Some(t.segment_id.clone()), out);
    }

    fn is_abuse(&self, h: &Hit) -> bool {
        let c = &self.lex.categories[h.category as usize];
        h.side == Side::Customer && c.kind.is_abuse() && (!c.directed || h.directed)
    }

    fn learn_words(&mut self, words: &str) {
        // Mirroring, once seen, stays: the words are needed only until then.
        if self.mirrored {
            return;
        }
        for w in words.split(' ') {
            if is_content_word(w) && !self.customer_words.contains(w) {
                self.customer_words.insert(w.to_string());
            }
        }
    }

    /// The agent starts speaking while the agitated customer's turn is still running.
    fn overlap(&mut self, t: &Transcript, at: u64, out: &mut Vec<Outbound>) {
        let (Some(start), Some((cs, ce))) = (t.start_ms, self.customer_span) else {
            return;
        };
        if cs <= start
            && start < ce
            && self.agitated()
            && self.raise(NudgeKind::LetThemVent, Side::Agent, out)
        {
            if let Some(a) = self
                .active
                .iter_mut()
                .find(|a| a.nudge.kind == NudgeKind::LetThemVent)
            {
                a.clear_at = Some(ce.max(at));
            }
        }
    }

    fn agent_turn_words(&mut self, t: &Transcript, text: &str, words: &str) {
        // Pace is measured over the whole turn, at its end.
        self.turn.words += text.split_whitespace().count();
        if let (Some(s), Some(e)) = (t.start_ms, t.end_ms) {
            self.turn.ms += e.saturating_sub(s);
        }
        // Mirroring: the agent reuses the customer's own content words (two or more).
        if self.mirrored {
            return;
        }
        for w in words.split(' ') {
            // Only content words were learnt: the cheap test first.
            if w.len() >= CONTENT_WORD_LEN
                && self.customer_words.contains(w)
                && !self.shared_words.contains(w)
            {
                self.shared_words.insert(w.to_string());
            }
        }
        self.mirrored = self.shared_words.len() >= 2;
    }

    // ------------------------------------------------------------------ turns

    fn turn_end(&mut self, side: Side, out: &mut Vec<Outbound>) {
        match side {
            Side::Agent => {
                let turn = std::mem::take(&mut self.turn);
                if turn.words >= self.policy.pace_min_words && turn.ms > 0 {
                    let wpm = turn.words as f64 * 60_000.0 / turn.ms as f64;
                    if wpm > self.policy.pace_limit_wpm && self.agitated() {
                        self.raise(NudgeKind::SlowDown, Side::Agent, out);
                    } else if wpm <= self.policy.pace_limit_wpm {
                        self.clear(NudgeKind::SlowDown, ClearReason::Satisfied, out);
                    }
                }
                if !turn.offered.is_empty() && self.offered.len() == 1 {
                    self.raise(NudgeKind::OfferOptions, Side::Agent, out);
                }
                // A single remedy the agent reports done in the turn was agreed; an
                // acceptance that names no remedy settles only a single offer.
                let single =
                    (turn.offered.len() == 1).then(|| *turn.offered.iter().next().expect("one"));
                if turn.completed && self.agreed.is_none() {
                    self.agreed = single;
                }
                if !turn.offered.is_empty() {
                    self.last_offered = single;
                }
                // The cost: the first sum of the turn that completed the remedy, else of
                // the last turn that offered one.
                if let Some(cost) = turn.amount {
                    let offer = !turn.offered.is_empty();
                    if offer && (turn.completed || !self.cost_completed) {
                        self.cost = Some(cost);
                        self.cost_completed |= turn.completed;
                    }
                }
                if turn.generic_apology && !turn.specific_apology && !self.apologized {
                    self.raise(NudgeKind::ApologizeSpecifically, Side::Agent, out);
                }
                if turn.vague && !turn.timeframe {
                    self.raise(NudgeKind::GiveTimeframe, Side::Agent, out);
                }
                // Closing an abusive call is not a service close: no closing nudges then.
                if turn.closing && self.boundary.abuse_incidents == 0 {
                    if self.agreed.is_some() && self.confirmation.is_none() && !self.completed_step
                    {
                        self.raise(NudgeKind::GiveConfirmation, Side::Agent, out);
                    }
                    if !self.satisfaction_checked {
                        self.raise(NudgeKind::CheckSatisfaction, Side::Agent, out);
                    }
                }
                let number = self.agent_turn;
                let raised_before =
                    |a: &Active| a.nudge.kind == NudgeKind::StayComposed && a.turn < number;
                if !turn.defensive && self.active.iter().any(raised_before) {
                    self.clear(NudgeKind::StayComposed, ClearReason::Satisfied, out);
                }
            }
            Side::Customer => {
                self.customer_span = None;
                self.turn_refund_demand = false;
                self.turn_max_amount = 0.0;
            }
        }
    }

    // ------------------------------------------------------------------ hits

    fn hits(&mut self, side: Side, hits: &[Hit], out: &mut Vec<Outbound>) {
        if hits.is_empty() {
            return;
        }
        let kinds = hits.iter().fold(KindSet::default(), |set, h| {
            set.with(self.lex.categories[h.category as usize].kind)
        });
        for h in hits {
            match side {
                Side::Customer => self.customer_hit(h, out),
                Side::Agent => self.agent_hit(h, &kinds, out),
            }
        }
        if side == Side::Customer
            && self.turn_refund_demand
            && self.turn_max_amount > self.authority_limit
        {
            self.escalate(EscalationReason::AuthorityLimit, Side::Customer, out);
        }
    }

    fn escalate(&mut self, reason: EscalationReason, side: Side, out: &mut Vec<Outbound>) {
        if !self.escalation_reasons.contains(&reason) {
            self.escalation_reasons.push(reason);
        }
        if !self.escalated {
            self.raise(NudgeKind::EscalateToSupervisor, side, out);
        }
    }

    fn note_amount(&mut self, text: &str) -> Option<f64> {
        let (value, _) = parse_amount(text, &self.currency)?;
        Some(value)
    }

    fn customer_hit(&mut self, h: &Hit, out: &mut Vec<Outbound>) {
        let cat = &self.lex.categories[h.category as usize];
        let kind = cat.kind;
        let tag = cat.tag.clone();
        if self.is_abuse(h) {
            self.heat(0.3);
            if self.incident_turn != Some(self.customer_turn) {
                self.incident_turn = Some(self.customer_turn);
                let change = self.boundary.abuse();
                if change != Change::None {
                    self.boundary_msg(out);
                }
                self.boundary_nudges(out);
            }
            return;
        }
        match kind {
            Kind::Frustration | Kind::Profanity | Kind::Insult => {
                self.issue_raised = true;
                self.heat(0.2);
                self.raise(NudgeKind::ValidateFeelings, Side::Customer, out);
            }
            Kind::Complaint => {
                self.issue_raised = true;
                let category = tag
                    .as_deref()
                    .and_then(ComplaintCategory::parse)
                    .unwrap_or(ComplaintCategory::Other);
                if self.complaint.categories.contains(&category) {
                    self.heat(0.05);
                } else {
                    self.complaint.categories.push(category);
                    let seg = &self.last_segment[1];
                    self.complaint.evidence.push(ComplaintEvidence {
                        category,
                        quote: seg.text.clone(),
                        at_ms: seg.at_ms,
                    });
                }
                if !self.apologized {
                    self.raise(NudgeKind::ApologizeSpecifically, Side::Customer, out);
                }
            }
            Kind::SupervisorRequest => {
                self.heat(0.1);
                self.escalate(EscalationReason::CustomerRequest, Side::Customer, out);
            }
            Kind::RefundDemand => {
                self.issue_raised = true;
                self.turn_refund_demand = true;
                if let Some(v) = self.note_amount(&h.text) {
                    self.turn_max_amount = self.turn_max_amount.max(v);
                }
            }
            Kind::Amount => {
                if let Some(v) = self.note_amount(&h.text) {
                    self.turn_max_amount = self.turn_max_amount.max(v);
                }
            }
            Kind::CustomerApology => self.heat(-0.2),
            // The first remedy agreed is the resolution; one the customer names wins over
            // the last one offered.
            Kind::RemedyAcceptance if self.agreed.is_none() => {
                self.agreed = match remedy_of(tag.as_deref()) {
                    // "I'll take the refund" when part of the money was offered back.
                    Some(RemedyKind::Refund)
                        if !self.offered.contains(&RemedyKind::Refund)
                            && self.offered.contains(&RemedyKind::PartialRefund) =>
                    {
                        Some(RemedyKind::PartialRefund)
                    }
                    Some(named) => Some(named),
                    None => self.last_offered,
                };
            }
            Kind::Technical => self.escalate(EscalationReason::Technical, Side::Customer, out),
            _ => {}
        }
    }

    fn agent_hit(&mut self, h: &Hit, kinds: &KindSet, out: &mut Vec<Outbound>) {
        let cat = &self.lex.categories[h.category as usize];
        let kind = cat.kind;
        let tag = cat.tag.clone();
        match kind {
            Kind::Validation => {
                self.validated = true;
                self.heat(-0.15);
                self.clear(NudgeKind::ValidateFeelings, ClearReason::Satisfied, out);
            }
            Kind::Affirmation => self.affirmations += 1,
            Kind::ApologySpecific => {
                self.turn.specific_apology = true;
                self.apologized = true;
                self.heat(-0.15);
                self.clear(
                    NudgeKind::ApologizeSpecifically,
                    ClearReason::Satisfied,
                    out,
                );
            }
            Kind::ApologyGeneric | Kind::NonApology => self.turn.generic_apology = true,
            Kind::BlanketFault => {
                self.raise(NudgeKind::AvoidBlanketFault, Side::Agent, out);
            }
            Kind::Defensive => {
                self.turn.defensive = true;
                self.raise(NudgeKind::StayComposed, Side::Agent, out);
            }
            // Root-cause questions follow the customer's issue: "how can I help?" in the
            // agent's opening turn is a greeting, not one.
            Kind::OpenQuestion if self.issue_raised || self.agent_turn > 1 => {
                self.open_questions += 1;
                self.clear(NudgeKind::AskOpenQuestions, ClearReason::Satisfied, out);
            }
            Kind::Summary => {
                self.turn.summary_end = Some(h.end_tok);
                self.summarized = true;
                self.clear(NudgeKind::SummarizeBack, ClearReason::Satisfied, out);
            }
            Kind::DesiredOutcome => {
                self.asked_outcome = true;
                self.clear(NudgeKind::AskDesiredOutcome, ClearReason::Satisfied, out);
            }
            // A summary recounts what happened ("the replacement that came on Saturday"):
            // a remedy named within a few words after it is not an offer.
            Kind::Remedy if self.turn.summary_end.is_none_or(|e| h.start_tok > e + 25) => {
                let Some(remedy) = remedy_of(tag.as_deref()) else {
                    return;
                };
                if self.open_questions == 0 && !kinds.contains(&Kind::OpenQuestion) {
                    self.raise(NudgeKind::AskOpenQuestions, Side::Agent, out);
                }
                if !self.summarized && !kinds.contains(&Kind::Summary) {
                    self.raise(NudgeKind::SummarizeBack, Side::Agent, out);
                }
                if !self.asked_outcome && !kinds.contains(&Kind::DesiredOutcome) {
                    self.raise(NudgeKind::AskDesiredOutcome, Side::Agent, out);
                }
                if !self.offered.contains(&remedy) {
                    self.offered.push(remedy);
                }
                self.turn.offered.insert(remedy);
                if self.offered.len() >= 2 {
                    self.clear(NudgeKind::OfferOptions, ClearReason::Satisfied, out);
                }
                if let Some((amount, currency)) = parse_amount(&h.text, &self.currency) {
                    self.turn.amount.get_or_insert(Cost { amount, currency });
                    if amount > self.authority_limit
                        && matches!(
                            remedy,
                            RemedyKind::Refund
                                | RemedyKind::PartialRefund
                                | RemedyKind::ServiceCredit
                        )
                    {
                        self.escalate(EscalationReason::AuthorityLimit, Side::Agent, out);
                    }
                }
            }
            // A sum said in a turn with an offer or a completed step is the remedy's cost
            // (decided at the turn's end, so that where segments were cut does not matter).
            Kind::Amount => {
                if let Some((amount, currency)) = parse_amount(&h.text, &self.currency) {
                    self.turn.amount.get_or_insert(Cost { amount, currency });
                }
            }
            Kind::VaguePromise => self.turn.vague = true,
            Kind::Timeframe => {
                self.turn.timeframe = true;
                // The resolution's timeframe is the first one given with or after an
                // offer; one said before any offer ("it takes about a minute") only
                // stands in when no other comes.
                let with_offer = !self.offered.is_empty() || kinds.contains(&Kind::Remedy);
                if self.timeframe.is_none() || (with_offer && !self.timeframe_with_offer) {
                    self.timeframe = Some(h.text.clone());
                    self.timeframe_with_offer = with_offer;
                }
                self.clear(NudgeKind::GiveTimeframe, ClearReason::Satisfied, out);
            }
            Kind::CompletedStep => {
                self.completed_step = true;
                self.turn.completed = true;
                self.clear(NudgeKind::GiveConfirmation, ClearReason::Satisfied, out);
            }
            Kind::ConfirmationNumber => {
                if let Some(r) = self.reference(&h.text) {
                    self.confirmation = Some(r);
                }
                self.clear(NudgeKind::GiveConfirmation, ClearReason::Satisfied, out);
            }
            Kind::SatisfactionCheck => {
                self.satisfaction_checked = true;
                self.clear(NudgeKind::CheckSatisfaction, ClearReason::Satisfied, out);
            }
            Kind::Closing => self.turn.closing = true,
            Kind::BoundaryWarning => {
                if self.boundary.warning() != Change::None {
                    self.boundary_msg(out);
                }
                self.boundary_nudges(out);
            }
            Kind::EndCall => self.end_by_agent(out),
            Kind::Transfer => {
                self.escalated = true;
                self.clear(NudgeKind::EscalateToSupervisor, ClearReason::Satisfied, out);
            }
            Kind::Technical => self.escalate(EscalationReason::Technical, Side::Agent, out),
            _ => {}
        }
    }

    /// The reference code in a confirmation hit, with the casing the agent's segment had.
    fn reference(&self, normalised: &str) -> Option<String> {
        const NOT_PREFIX: &[&str] = &[
            "is", "number", "no", "ref", "the", "your", "code", "id", "its", "it",
        ];
        let words: Vec<&str> = normalised.split(' ').collect();
        let at = words
            .iter()
            .rposition(|w| w.bytes().any(|b| b.is_ascii_digit()))?;
        // A short letter prefix said apart from the digits belongs to the code ("CL 302775").
        let code = match at.checked_sub(1).map(|i| words[i]) {
            Some(p)
                if (1..=4).contains(&p.len())
                    && p.bytes().all(|b| b.is_ascii_lowercase())
                    && !NOT_PREFIX.contains(&p) =>
            {
                format!("{p} {}", words[at])
            }
            _ => words[at].to_string(),
        };
        // The agent's own casing, when the segment has the code as written.
        let raw = &self.last_segment[0].text;
        let lower = raw.to_ascii_lowercase();
        Some(match lower.find(&code) {
            Some(i) if raw.is_char_boundary(i) && raw.is_char_boundary(i + code.len()) => {
                raw[i..i + code.len()].to_string()
            }
            _ => code.to_ascii_uppercase(),
        })
    }

    fn end_by_agent(&mut self, out: &mut Vec<Outbound>) {
        match self.boundary.end_by_agent() {
            Some(true) => {
                self.raise(NudgeKind::TerminationPremature, Side::Agent, out);
            }
            Some(false) => {
                self.boundary_msg(out);
                self.boundary_nudges(out);
            }
            None => {}
        }
    }

    // ------------------------------------------------------------------ end

    fn end(&mut self, reason: EndReason, out: &mut Vec<Outbound>) {
        let hits = self.matcher.finish();
        let (agent, customer): (Vec<Hit>, Vec<Hit>) =
            hits.into_iter().partition(|h| h.side == Side::Agent);
        // The speaker who spoke last ends last.
        if self.last_final == Some(Side::Agent) {
            self.hits(Side::Customer, &customer, out);
            self.hits(Side::Agent, &agent, out);
        } else {
            self.hits(Side::Agent, &agent, out);
            self.hits(Side::Customer, &customer, out);
        }
        if let Some(side) = self.last_final {
            self.turn_end(side, out);
        }
        if reason == EndReason::AgentHangup {
            self.end_by_agent(out);
        }
        if reason == EndReason::Transferred {
            self.escalated = true;
        }
        let kinds: Vec<NudgeKind> = self.active.iter().map(|a| a.nudge.kind).collect();
        for kind in kinds {
            self.clear(kind, ClearReason::CallEnded, out);
        }
        self.ended = true;
        out.push(Outbound::Record(Box::new(RecordMsg {
            record: self.record(reason),
        })));
    }

    fn record(&self, reason: EndReason) -> CallRecord {
        let options = self.offered.len() as u32;
        let checks = [
            self.validated,
            self.apologized,
            self.open_questions > 0,
            self.summarized,
            self.asked_outcome,
            options >= 2,
            self.timeframe.is_some(),
            self.confirmation.is_some() || self.completed_step,
            self.satisfaction_checked,
        ];
        let score = checks.iter().filter(|&&c| c).count() as f64 / checks.len() as f64;
        let follow_up = self.agreed.and_then(|k| {
            let confirm = match k {
                RemedyKind::Replacement => "the replacement was delivered",
                RemedyKind::RepairAppointment => {
                    "the repair visit took place and fixed the problem"
                }
                RemedyKind::Refund | RemedyKind::PartialRefund => "the refund reached the customer",
                _ => return None,
            };
            Some(FollowUp {
                due_after_ms: self.policy.follow_up_ms,
                confirm: confirm.to_string(),
            })
        });
        CallRecord {
            call_id: self.call_id.clone(),
            tenant: self.tenant.clone(),
            agent_id: self.agent_id.clone(),
            started_at: self.started_at.clone(),
            ended_at_ms: self.now,
            end_reason: reason,
            lexicon_version: self.lex.version.clone(),
            complaint: self.complaint.clone(),
            resolution: Resolution {
                offered: self.offered.clone(),
                agreed: self.agreed,
                timeframe: self.timeframe.clone(),
                confirmation: self.confirmation.clone(),
                cost: self.cost.clone(),
            },
            boundary: self.boundary.record(),
            escalation: Escalation {
                escalated: self.escalated,
                reasons: self.escalation_reasons.clone(),
            },
            adherence: Adherence {
                validated: self.validated,
                apologized_specifically: self.apologized,
                open_questions: self.open_questions,
                summarized: self.summarized,
                asked_desired_outcome: self.asked_outcome,
                options_offered: options,
                concrete_timeframe: self.timeframe.is_some(),
                confirmation_given: self.confirmation.is_some() || self.completed_step,
                satisfaction_checked: self.satisfaction_checked,
                mirrored_language: self.mirrored,
                affirmations: self.affirmations,
                score: (score * 100.0).round() / 100.0,
            },
            nudges: self.nudges.clone(),
            follow_up,
        }
    }

    /// What a widget shows when it joins: active nudges, boundary, temperature, checklist.
    pub fn snapshot(&self) -> Snapshot {
        let b = &self.boundary;
        Snapshot {
            call_id: self.call_id.clone(),
            nudges: self.active.iter().map(|a| a.nudge.clone()).collect(),
            boundary: BoundaryStatus {
                state: b.state(),
                abuse_incidents: b.abuse_incidents,
                warnings_given: b.warnings_given,
                warnings_allowed: b.warnings_allowed,
            },
            temperature: (self.temperature * 100.0).round() / 100.0,
            checklist: Checklist {
                validated: self.validated,
                apologized_specifically: self.apologized,
                open_question: self.open_questions > 0,
                summarized: self.summarized,
                asked_desired_outcome: self.asked_outcome,
                options_offered: self.offered.len() >= 2,
                concrete_timeframe: self.timeframe.is_some(),
                confirmation_given: self.confirmation.is_some() || self.completed_step,
                satisfaction_checked: self.satisfaction_checked,
            },
            at_ms: self.now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_sets_hold_every_kind() {
        assert!(Kind::ALL.iter().all(|&k| kind_index(k) < 128));
        let set = KindSet::default().with(Kind::Summary);
        assert!(set.contains(&Kind::Summary) && !set.contains(&Kind::OpenQuestion));
        let all = Kind::ALL.iter().fold(KindSet::default(), |s, &k| s.with(k));
        assert!(Kind::ALL.iter().all(|k| all.contains(k)));
    }

    #[test]
    fn stop_words_are_sorted_for_their_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
        assert!(!is_content_word("should"));
        assert!(is_content_word("router"));
        assert!(!is_content_word("wifi"));
    }
}
