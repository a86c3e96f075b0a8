//! Lexicons: the reviewable files of `lexicons/<locale>/`, their loading with
//! `file:line: reason` errors ([`load`]), their compilation into one streaming automaton
//! ([`compile`]), and the examples every category carries ([`check`]).
//!
//! The file format is documented for QA leads in `lexicons/README.md`.

pub mod check;
pub mod compile;
pub mod load;
pub(crate) mod reverse;
pub mod template;

use serde::{Deserialize, Serialize};

pub use compile::Lexicon;
pub use load::{load_dir, LexiconError, SourceCategory};

/// Whose speech a category applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerFilter {
    Agent,
    Customer,
    Any,
}

impl SpeakerFilter {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "agent" => Self::Agent,
            "customer" => Self::Customer,
            "any" => Self::Any,
            _ => return None,
        })
    }
}

macro_rules! kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// What the coach does with a category's hits.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind { $($variant),* }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => $name),* }
            }
            pub fn parse(s: &str) -> Option<Kind> {
                match s { $($name => Some(Kind::$variant),)* _ => None }
            }
        }
    };
}

kinds! {
    Frustration => "frustration",
    Profanity => "profanity",
    Insult => "insult",
    DirectedAbuse => "directed_abuse",
    Threat => "threat",
    HateSpeech => "hate_speech",
    Complaint => "complaint",
    SupervisorRequest => "supervisor_request",
    RefundDemand => "refund_demand",
    CustomerApology => "customer_apology",
    RemedyAcceptance => "remedy_acceptance",
    Validation => "validation",
    Affirmation => "affirmation",
    ApologySpecific => "apology_specific",
    ApologyGeneric => "apology_generic",
    NonApology => "non_apology",
    BlanketFault => "blanket_fault",
    Defensive => "defensive",
    OpenQuestion => "open_question",
    Summary => "summary",
    DesiredOutcome => "desired_outcome",
    Remedy => "remedy",
    VaguePromise => "vague_promise",
    Timeframe => "timeframe",
    CompletedStep => "completed_step",
    ConfirmationNumber => "confirmation_number",
    SatisfactionCheck => "satisfaction_check",
    Closing => "closing",
    BoundaryWarning => "boundary_warning",
    EndCall => "end_call",
    Transfer => "transfer",
    Amount => "amount",
    Technical => "technical",
    Negation => "negation",
    ReportedSpeech => "reported_speech",
    PersonCue => "person_cue",
    ThingCue => "thing_cue",
    ClauseBreak => "clause_break",
}

/// Complaint root causes (the `tag` of `complaint` categories).
pub const ROOT_CAUSES: &[&str] = &[
    "wrong_item",
    "damaged_item",
    "late_delivery",
    "missing_item",
    "billing_error",
    "defective_product",
    "service_outage",
    "poor_service",
    "cancellation",
    "refund_not_received",
];

/// Remedy kinds (the `tag` of `remedy` categories).
pub const REMEDY_KINDS: &[&str] = &[
    "refund",
    "partial_refund",
    "replacement",
    "service_credit",
    "repair_appointment",
];

impl Kind {
    /// Modifier kinds feed the matcher's rules and produce no hits of their own.
    pub fn is_modifier(self) -> bool {
        matches!(
            self,
            Kind::Negation
                | Kind::ReportedSpeech
                | Kind::PersonCue
                | Kind::ThingCue
                | Kind::ClauseBreak
        )
    }

    /// Kinds whose words a masked token ("f***ing") may stand for.
    pub fn is_maskable(self) -> bool {
        matches!(
            self,
            Kind::Profanity | Kind::Insult | Kind::DirectedAbuse | Kind::Threat | Kind::HateSpeech
        )
    }

    /// Kinds whose tag may be left out (an acceptance that names no remedy).
    pub fn tag_optional(self) -> bool {
        self == Kind::RemedyAcceptance
    }

    /// Kinds that abuse the agent when they count (directed, not negated, not reported).
    pub fn is_abuse(self) -> bool {
        matches!(
            self,
            Kind::Profanity | Kind::Insult | Kind::DirectedAbuse | Kind::Threat | Kind::HateSpeech
        )
    }

    /// The tags a kind takes, or `None` when it takes no tag.
    pub fn tags(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Complaint => Some(ROOT_CAUSES),
            Kind::Remedy | Kind::RemedyAcceptance => Some(REMEDY_KINDS),
            Kind::BoundaryWarning => Some(&["first", "second"]),
            _ => None,
        }
    }
}
