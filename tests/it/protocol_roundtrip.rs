//! Every message of protocol.md survives encode -> decode unchanged, and decoding
//! errors name the field.

use keel::protocol::*;
use serde_json::{json, Value};

fn record() -> CallRecord {
    CallRecord {
        call_id: "c-1042".into(),
        tenant: Some("acme".into()),
        agent_id: Some("a-17".into()),
        started_at: Some("2026-11-29T10:00:00Z".into()),
        ended_at_ms: 312000,
        end_reason: EndReason::Completed,
        lexicon_version: "sha256:9f2c".into(),
        complaint: Complaint {
            categories: vec![ComplaintCategory::WrongItem, ComplaintCategory::DamagedItem],
            evidence: vec![ComplaintEvidence {
                category: ComplaintCategory::WrongItem,
                quote: "you sent me the wrong model".into(),
                at_ms: 9100,
            }],
        },
        resolution: Resolution {
            offered: vec![RemedyKind::Refund, RemedyKind::Replacement],
            agreed: Some(RemedyKind::Replacement),
            timeframe: Some("within 48 hours".into()),
            confirmation: Some("RMA-55123".into()),
            cost: Some(Cost {
                amount: 49.99,
                currency: "USD".into(),
            }),
        },
        boundary: BoundaryRecord {
            state: BoundaryState::Clear,
            abuse_incidents: 0,
            warnings_given: 0,
            warnings_allowed: 2,
            terminated: false,
            compliant: true,
        },
        escalation: Escalation {
            escalated: false,
            reasons: vec![],
        },
        adherence: Adherence {
            validated: true,
            apologized_specifically: true,
            open_questions: 2,
            summarized: true,
            asked_desired_outcome: true,
            options_offered: 2,
            concrete_timeframe: true,
            confirmation_given: true,
            satisfaction_checked: true,
            mirrored_language: true,
            affirmations: 3,
            score: 1.0,
        },
        nudges: vec![NudgeRecord {
            id: "n-1".into(),
            kind: NudgeKind::ValidateFeelings,
            raised_at_ms: 9100,
            cleared_at_ms: Some(12800),
            clear_reason: Some(ClearReason::Satisfied),
        }],
        follow_up: Some(FollowUp {
            due_after_ms: 86_400_000,
            confirm: "the replacement was delivered".into(),
        }),
    }
}

fn nudge() -> Nudge {
    Nudge {
        id: "n-3".into(),
        kind: NudgeKind::ValidateFeelings,
        priority: Priority::High,
        text: "Acknowledge their frustration before solving.".into(),
        evidence: Evidence {
            speaker: Role::Customer,
            segment_id: "s-7".into(),
            quote: "this is the third time I'm calling about this".into(),
            at_ms: 44100,
        },
        at_ms: 44100,
    }
}

#[test]
fn every_outbound_message_round_trips() {
    let msgs = vec![
        Outbound::Nudge(nudge()),
        Outbound::NudgeCleared(NudgeCleared {
            id: "n-3".into(),
            kind: NudgeKind::ValidateFeelings,
            reason: ClearReason::Retracted,
            at_ms: 47800,
        }),
        Outbound::Boundary(Boundary {
            state: BoundaryState::FirstWarningDue,
            abuse_incidents: 1,
            warnings_given: 0,
            warnings_allowed: 2,
            at_ms: 61000,
        }),
        Outbound::Record(Box::new(RecordMsg { record: record() })),
        Outbound::Error(ErrorMsg {
            code: "bad_message".into(),
            message: "transcript.speaker: expected agent or customer".into(),
            at_ms: None,
        }),
        Outbound::Snapshot(Snapshot {
            call_id: "c-1042".into(),
            nudges: vec![nudge()],
            boundary: BoundaryStatus {
                state: BoundaryState::WarnedOnce,
                abuse_incidents: 1,
                warnings_given: 1,
                warnings_allowed: 2,
            },
            temperature: 0.6,
            checklist: Checklist {
                validated: true,
                ..Default::default()
            },
            at_ms: 50000,
        }),
        Outbound::Session(Session {
            call_id: "c-1042".into(),
            state: SessionState::Resumed,
            last_seq: 41,
        }),
        Outbound::Ack(Ack { seq: 42 }),
    ];
    for m in msgs {
        let line = encode(&m);
        let back = decode_outbound(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(back, m, "{line}");
    }
}

#[test]
fn the_record_has_the_shape_of_protocol_md() {
    let v: Value = serde_json::to_value(record()).unwrap();
    let doc = json!({"call_id":"c-1042","tenant":"acme","agent_id":"a-17","started_at":"2026-11-29T10:00:00Z",
     "ended_at_ms":312000,"end_reason":"completed","lexicon_version":"sha256:9f2c",
     "complaint":{"categories":["wrong_item","damaged_item"],
                  "evidence":[{"category":"wrong_item","quote":"you sent me the wrong model","at_ms":9100}]},
     "resolution":{"offered":["refund","replacement"],"agreed":"replacement","timeframe":"within 48 hours",
                   "confirmation":"RMA-55123","cost":{"amount":49.99,"currency":"USD"}},
     "boundary":{"state":"clear","abuse_incidents":0,"warnings_given":0,"warnings_allowed":2,
                 "terminated":false,"compliant":true},
     "escalation":{"escalated":false,"reasons":[]},
     "adherence":{"validated":true,"apologized_specifically":true,"open_questions":2,"summarized":true,
                  "asked_desired_outcome":true,"options_offered":2,"concrete_timeframe":true,
                  "confirmation_given":true,"satisfaction_checked":true,"mirrored_language":true,
                  "affirmations":3,"score":1.0},
     "nudges":[{"id":"n-1","kind":"validate_feelings","raised_at_ms":9100,"cleared_at_ms":12800,"clear_reason":"satisfied"}],
     "follow_up":{"due_after_ms":86400000,"confirm":"the replacement was delivered"}});
    assert_eq!(v, doc);
    let mut nulls = record();
    nulls.resolution.agreed = None;
    nulls.follow_up = None;
    let v = serde_json::to_value(nulls).unwrap();
    assert_eq!(v["resolution"]["agreed"], Value::Null);
    assert_eq!(v["follow_up"], Value::Null);
}

#[test]
fn every_inbound_message_round_trips() {
    let msgs = vec![
        Inbound::Start(Start {
            call_id: "c-1".into(),
            agent_id: Some("a-1".into()),
            tenant: Some("acme".into()),
            locale: Some("en-US".into()),
            currency: Some("GBP".into()),
            started_at: Some("2026-11-29T10:00:00Z".into()),
            authority_limit: Some(250.0),
            expect: None,
        }),
        Inbound::Start(Start::new("c-2")),
        Inbound::Transcript(Transcript {
            segment_id: "s-1".into(),
            speaker: Role::Supervisor,
            text: "hi".into(),
            is_final: true,
            start_ms: Some(0),
            end_ms: Some(900),
            seq: Some(1),
        }),
        Inbound::Transcript(Transcript {
            segment_id: "s-2".into(),
            speaker: Role::Agent,
            text: "".into(),
            is_final: false,
            start_ms: None,
            end_ms: None,
            seq: None,
        }),
        Inbound::End(End {
            reason: EndReason::AgentHangup,
        }),
    ];
    for m in msgs {
        let line = encode(&m);
        assert_eq!(decode_inbound(&line).unwrap(), m, "{line}");
    }
}

#[test]
fn unknown_fields_are_ignored() {
    let m = decode_inbound(r#"{"type":"end","reason":"dropped","vendor_extra":{"a":1}}"#).unwrap();
    assert_eq!(
        m,
        Inbound::End(End {
            reason: EndReason::Dropped
        })
    );
    assert_eq!(
        decode_inbound(r#"{"type":"end"}"#).unwrap(),
        Inbound::End(End {
            reason: EndReason::Completed
        })
    );
}

#[test]
fn decoding_errors_name_the_field_and_the_problem() {
    let cases = [
        (
            r#"{"type":"transcript","segment_id":"s","speaker":"robot","text":"x","is_final":true}"#,
            "transcript.speaker",
            "expected one of agent, customer",
        ),
        (
            r#"{"type":"transcript","segment_id":"s","speaker":"agent","is_final":true}"#,
            "transcript.text",
            "missing",
        ),
        (
            r#"{"type":"transcript","segment_id":"s","speaker":"agent","text":"x","is_final":true,"start_ms":-4}"#,
            "transcript.start_ms",
            "integer",
        ),
        (
            r#"{"type":"transcript","segment_id":"s","speaker":"agent","text":"x","is_final":true,"start_ms":5,"end_ms":4}"#,
            "transcript.end_ms",
            "before",
        ),
        (
            r#"{"type":"transcript","segment_id":"","speaker":"agent","text":"x","is_final":true}"#,
            "transcript.segment_id",
            "empty",
        ),
        (r#"{"type":"start","call_id":7}"#, "start.call_id", "string"),
        (
            r#"{"type":"end","reason":"bored"}"#,
            "end.reason",
            "expected one of completed",
        ),
        (r#"{"type":42}"#, "type", "string"),
        (r#"{"type":"nudge"}"#, "type", "unknown message type"),
        (r#"[1,2]"#, "message", "object"),
        (r#"{"type":"start","#, "message", "JSON"),
    ];
    for (line, field, problem) in cases {
        let e = decode_inbound(line).expect_err(line);
        assert_eq!(e.field, field, "{line}: {e}");
        assert!(e.problem.contains(problem), "{line}: {e}");
        let msg = e.to_message(None);
        let v: Value = serde_json::to_value(&msg).unwrap();
        assert_eq!(v["type"], "error");
        assert!(v["message"].as_str().unwrap().starts_with(field));
    }
}
