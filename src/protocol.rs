//! The wire messages of `protocol.md`, as serde types.
//!
//! Inbound messages (platform → keel) are decoded with [`decode_inbound`], which names the
//! offending field in every error ("transcript.speaker: expected one of agent, customer,
//! supervisor, system, bot"). Unknown fields are ignored. Outbound messages serialise
//! with a `"type"` tag, one JSON object per websocket frame or JSON Lines line.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------- enums

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),* }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    let all: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    serde::de::Error::custom(format!("expected one of {}, got {:?}", all.join(", "), s))
                })
            }
        }
    };
}

wire_enum!(
    /// Who spoke. Only `agent` and `customer` are coached.
    Role { Agent => "agent", Customer => "customer", Supervisor => "supervisor", System => "system", Bot => "bot" }
);

wire_enum!(
    /// Why a call ended.
    EndReason {
        Completed => "completed",
        AgentHangup => "agent_hangup",
        CustomerHangup => "customer_hangup",
        Transferred => "transferred",
        Dropped => "dropped",
    }
);

wire_enum!(
    /// The nudge catalogue of `product.md`.
    NudgeKind {
        StayComposed => "stay_composed",
        SlowDown => "slow_down",
        LetThemVent => "let_them_vent",
        ValidateFeelings => "validate_feelings",
        ApologizeSpecifically => "apologize_specifically",
        AvoidBlanketFault => "avoid_blanket_fault",
        AskOpenQuestions => "ask_open_questions",
        SummarizeBack => "summarize_back",
        AskDesiredOutcome => "ask_desired_outcome",
        OfferOptions => "offer_options",
        GiveTimeframe => "give_timeframe",
        GiveConfirmation => "give_confirmation",
        CheckSatisfaction => "check_satisfaction",
        FirstBoundaryWarningDue => "first_boundary_warning_due",
        SecondBoundaryWarningDue => "second_boundary_warning_due",
        TerminationPermitted => "termination_permitted",
        TerminationPremature => "termination_premature",
        EscalateToSupervisor => "escalate_to_supervisor",
    }
);

wire_enum!(
    /// Nudge priority.
    Priority { Critical => "critical", High => "high", Medium => "medium", Low => "low" }
);

wire_enum!(
    /// Why a nudge was cleared.
    ClearReason { Satisfied => "satisfied", Expired => "expired", Retracted => "retracted", CallEnded => "call_ended" }
);

wire_enum!(
    /// The boundary counter's states.
    BoundaryState {
        Clear => "clear",
        FirstWarningDue => "first_warning_due",
        WarnedOnce => "warned_once",
        SecondWarningDue => "second_warning_due",
        WarnedTwice => "warned_twice",
        TerminationPermitted => "termination_permitted",
        Terminated => "terminated",
    }
);

wire_enum!(
    /// Why a call was escalated.
    EscalationReason { AuthorityLimit => "authority_limit", Technical => "technical", CustomerRequest => "customer_request" }
);

wire_enum!(
    /// Complaint root causes.
    ComplaintCategory {
        WrongItem => "wrong_item",
        DamagedItem => "damaged_item",
        LateDelivery => "late_delivery",
        MissingItem => "missing_item",
        BillingError => "billing_error",
        DefectiveProduct => "defective_product",
        ServiceOutage => "service_outage",
        PoorService => "poor_service",
        Cancellation => "cancellation",
        RefundNotReceived => "refund_not_received",
        Other => "other",
    }
);

wire_enum!(
    /// Remedy kinds (`none` only as an agreed outcome).
    RemedyKind {
        Refund => "refund",
        PartialRefund => "partial_refund",
        Replacement => "replacement",
        ServiceCredit => "service_credit",
        RepairAppointment => "repair_appointment",
        None => "none",
    }
);

wire_enum!(
    /// Whether a platform connection started or resumed a call.
    SessionState { New => "new", Resumed => "resumed" }
);

// ---------------------------------------------------------------- inbound

/// `start`: opens a call. Every field but `call_id` is optional.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Wall-clock start (RFC 3339), copied into the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Per-call override of the agent's authority limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority_limit: Option<f64>,
    /// A recorded fixture's expectations (ignored on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Value>,
}

impl Start {
    /// A `start` that names only its call.
    pub fn new(call_id: impl Into<String>) -> Start {
        Start {
            call_id: call_id.into(),
            agent_id: None,
            tenant: None,
            locale: None,
            currency: None,
            started_at: None,
            authority_limit: None,
            expect: None,
        }
    }
}

/// `transcript`: the whole current hypothesis of one segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub segment_id: String,
    pub speaker: Role,
    pub text: String,
    pub is_final: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// `end`: the call is over.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct End {
    #[serde(default = "default_end_reason")]
    pub reason: EndReason,
}

fn default_end_reason() -> EndReason {
    EndReason::Completed
}

/// A platform → keel message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Inbound {
    Start(Start),
    Transcript(Transcript),
    End(End),
}

// ---------------------------------------------------------------- outbound

/// What raised a nudge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub speaker: Role,
    pub segment_id: String,
    /// Redacted quote.
    pub quote: String,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nudge {
    pub id: String,
    pub kind: NudgeKind,
    pub priority: Priority,
    pub text: String,
    pub evidence: Evidence,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NudgeCleared {
    pub id: String,
    pub kind: NudgeKind,
    pub reason: ClearReason,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Boundary {
    pub state: BoundaryState,
    pub abuse_incidents: u32,
    pub warnings_given: u32,
    pub warnings_allowed: u32,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMsg {
    pub code: String,
    pub message: String,
    pub at_ms: Option<u64>,
}

/// The phase checklist a widget shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checklist {
    pub validated: bool,
    pub apologized_specifically: bool,
    pub open_question: bool,
    pub summarized: bool,
    pub asked_desired_outcome: bool,
    pub options_offered: bool,
    pub concrete_timeframe: bool,
    pub confirmation_given: bool,
    pub satisfaction_checked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundaryStatus {
    pub state: BoundaryState,
    pub abuse_incidents: u32,
    pub warnings_given: u32,
    pub warnings_allowed: u32,
}

/// The first message of a widget feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub call_id: String,
    pub nudges: Vec<Nudge>,
    pub boundary: BoundaryStatus,
    pub temperature: f64,
    pub checklist: Checklist,
    pub at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub call_id: String,
    pub state: SessionState,
    pub last_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordMsg {
    pub record: CallRecord,
}

/// A keel → platform/widget message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outbound {
    Nudge(Nudge),
    NudgeCleared(NudgeCleared),
    Boundary(Boundary),
    Record(Box<RecordMsg>),
    Error(ErrorMsg),
    Snapshot(Snapshot),
    Session(Session),
    Ack(Ack),
}

// ---------------------------------------------------------------- the call record

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComplaintEvidence {
    pub category: ComplaintCategory,
    pub quote: String,
    pub at_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Complaint {
    pub categories: Vec<ComplaintCategory>,
    pub evidence: Vec<ComplaintEvidence>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub amount: f64,
    pub currency: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub offered: Vec<RemedyKind>,
    pub agreed: Option<RemedyKind>,
    pub timeframe: Option<String>,
    pub confirmation: Option<String>,
    pub cost: Option<Cost>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundaryRecord {
    pub state: BoundaryState,
    pub abuse_incidents: u32,
    pub warnings_given: u32,
    pub warnings_allowed: u32,
    pub terminated: bool,
    pub compliant: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub escalated: bool,
    pub reasons: Vec<EscalationReason>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Adherence {
    pub validated: bool,
    pub apologized_specifically: bool,
    pub open_questions: u32,
    pub summarized: bool,
    pub asked_desired_outcome: bool,
    pub options_offered: u32,
    pub concrete_timeframe: bool,
    pub confirmation_given: bool,
    pub satisfaction_checked: bool,
    pub mirrored_language: bool,
    pub affirmations: u32,
    pub score: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NudgeRecord {
    pub id: String,
    pub kind: NudgeKind,
    pub raised_at_ms: u64,
    pub cleared_at_ms: Option<u64>,
    pub clear_reason: Option<ClearReason>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FollowUp {
    pub due_after_ms: u64,
    pub confirm: String,
}

/// The call record of `product.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: String,
    pub tenant: Option<String>,
    pub agent_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at_ms: u64,
    pub end_reason: EndReason,
    pub lexicon_version: String,
    pub complaint: Complaint,
    pub resolution: Resolution,
    pub boundary: BoundaryRecord,
    pub escalation: Escalation,
    pub adherence: Adherence,
    pub nudges: Vec<NudgeRecord>,
    pub follow_up: Option<FollowUp>,
}

// ---------------------------------------------------------------- decoding

/// A message that could not be decoded: which field, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct DecodeError {
    /// `type`, `transcript.speaker`, `start.call_id`, or `message` for unparsable JSON.
    pub field: String,
    pub problem: String,
}

impl DecodeError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        DecodeError {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The `error` message keel answers with.
    pub fn to_message(&self, at_ms: Option<u64>) -> Outbound {
        Outbound::Error(ErrorMsg {
            code: "bad_message".into(),
            message: self.to_string(),
            at_ms,
        })
    }
}

fn typed<T: serde::de::DeserializeOwned>(ty: &str, v: Value) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde reports a missing field at its parent: move the name into the path.
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or(rest);
            let field = if path == "." || path.is_empty() {
                format!("{ty}.{name}")
            } else {
                format!("{ty}.{path}.{name}")
            };
            return DecodeError::new(field, "missing required field");
        }
        let problem = inner
            .split(" at line ")
            .next()
            .unwrap_or(&inner)
            .replace("invalid type: ", "")
            .to_string();
        let field = if path == "." || path.is_empty() {
            ty.to_string()
        } else {
            format!("{ty}.{path}")
        };
        DecodeError::new(field, problem)
    })
}

/// Decodes one platform → keel message (one websocket frame or fixture line).
pub fn decode_inbound(text: &str) -> Result<Inbound, DecodeError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::new("message", format!("not valid JSON ({e})")))?;
    let Value::Object(map) = &v else {
        return Err(DecodeError::new("message", "expected a JSON object"));
    };
    let ty = match map.get("type") {
        None => return Err(DecodeError::new("type", "missing required field")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(DecodeError::new("type", "expected a string")),
    };
    match ty.as_str() {
        "start" => typed::<Start>("start", v).map(Inbound::Start),
        "transcript" => {
            let t = typed::<Transcript>("transcript", v)?;
            if t.segment_id.is_empty() {
                return Err(DecodeError::new(
                    "transcript.segment_id",
                    "must not be empty",
                ));
            }
            if let (Some(s), Some(e)) = (t.start_ms, t.end_ms) {
                if e < s {
                    return Err(DecodeError::new("transcript.end_ms", "is before start_ms"));
                }
            }
            Ok(Inbound::Transcript(t))
        }
        "end" => typed::<End>("end", v).map(Inbound::End),
        other => Err(DecodeError::new(
            "type",
            format!("unknown message type {other:?} (expected start, transcript or end)"),
        )),
    }
}

/// Decodes any keel → client message (for clients and tests).
pub fn decode_outbound(text: &str) -> Result<Outbound, DecodeError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::new("message", format!("not valid JSON ({e})")))?;
    let ty = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_string();
    typed::<Outbound>(&ty, v)
}

/// Encodes a message as one line of JSON.
pub fn encode<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).expect("wire types always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_examples_decode() {
        let lines = [
            r#"{"type":"start","call_id":"c-1042","agent_id":"a-17","tenant":"acme","locale":"en-US","currency":"USD"}"#,
            r#"{"type":"transcript","segment_id":"s-7","speaker":"customer","text":"this is the third time","is_final":false,"start_ms":41200,"end_ms":42900}"#,
            r#"{"type":"end","reason":"completed"}"#,
        ];
        for l in lines {
            decode_inbound(l).unwrap();
        }
        let out = [
            r#"{"type":"nudge","id":"n-3","kind":"validate_feelings","priority":"high","text":"Acknowledge their frustration before solving.","evidence":{"speaker":"customer","segment_id":"s-7","quote":"this is the third time I'm calling about this","at_ms":44100},"at_ms":44100}"#,
            r#"{"type":"nudge_cleared","id":"n-3","kind":"validate_feelings","reason":"satisfied","at_ms":47800}"#,
            r#"{"type":"boundary","state":"first_warning_due","abuse_incidents":1,"warnings_given":0,"warnings_allowed":2,"at_ms":61000}"#,
            r#"{"type":"error","code":"bad_message","message":"transcript.speaker: expected agent or customer","at_ms":null}"#,
            r#"{"type":"session","call_id":"c-1042","state":"new","last_seq":0}"#,
            r#"{"type":"ack","seq":12}"#,
        ];
        for l in out {
            let m = decode_outbound(l).unwrap();
            let back: Value = serde_json::from_str(&encode(&m)).unwrap();
            let orig: Value = serde_json::from_str(l).unwrap();
            assert_eq!(back, orig, "{l}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode_inbound(r#"{"type":"transcript","segment_id":"s","speaker":"robot","text":"x","is_final":true}"#).unwrap_err();
        assert_eq!(e.field, "transcript.speaker");
        let e = decode_inbound(
            r#"{"type":"transcript","segment_id":"s","speaker":"agent","is_final":true}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "transcript.text");
        let e = decode_inbound(r#"{"type":"transcript","segment_id":"s","speaker":"agent","text":"x","is_final":"yes"}"#).unwrap_err();
        assert_eq!(e.field, "transcript.is_final");
        let e = decode_inbound(r#"{"type":"hello"}"#).unwrap_err();
        assert_eq!(e.field, "type");
        let e = decode_inbound(r#"{"call_id":"x"}"#).unwrap_err();
        assert_eq!(e.field, "type");
        let e = decode_inbound(r#"{"type":"start"}"#).unwrap_err();
        assert_eq!(e.field, "start.call_id");
        let e = decode_inbound("{nope").unwrap_err();
        assert_eq!(e.field, "message");
        let e = decode_inbound(r#"{"type":"end","reason":"bored"}"#).unwrap_err();
        assert_eq!(e.field, "end.reason");
    }
}
