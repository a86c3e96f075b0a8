//! Input adapters over a real socket: recorded calls re-encoded as each speech engine
//! would send them coach exactly as the same events do offline, and raise the same
//! nudges, boundary transitions and record as the native recording.

use futures_util::{SinkExt, StreamExt};
use keel::adapters::{Adapter, Format};
use keel::coach::Policy;
use keel::protocol::{Inbound, Role};
use keel::replay;
use keel::server::App;
use serde_json::{json, Value};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use super::server::{next_text, start_app};
use super::support::{fixture, product_lexicon};

/// A native transcript event as `format` would carry it; `None` for other events.
fn encode(format: Format, t: &keel::protocol::Transcript) -> Option<Value> {
    let ch = if t.speaker == Role::Customer { 0 } else { 1 };
    let (s, e) = (t.start_ms.unwrap_or(0), t.end_ms.unwrap_or(0));
    let secs = |ms: u64| ms as f64 / 1000.0;
    Some(match format {
        Format::Deepgram => json!({
            "type": "Results", "channel_index": [ch, 2], "start": secs(s),
            "duration": secs(e.saturating_sub(s)), "is_final": t.is_final, "speech_final": t.is_final,
            "channel": {"alternatives": [{"transcript": t.text, "confidence": 0.93, "words": []}]}
        }),
        Format::AwsTranscribe => json!({"Transcript": {"Results": [{
            "ResultId": t.segment_id, "IsPartial": !t.is_final, "StartTime": secs(s), "EndTime": secs(e),
            "ChannelId": format!("ch_{ch}"), "Alternatives": [{"Transcript": t.text, "Items": []}]
        }]}}),
        Format::ContactLens => {
            let role = if t.speaker == Role::Customer {
                "CUSTOMER"
            } else {
                "AGENT"
            };
            if !t.is_final {
                // Contact Lens sends partials as pieces, not growing hypotheses; a
                // recorded hypothesis becomes one piece of its own transcript.
                return None;
            }
            json!({"Version": "1.1.0", "Channel": "VOICE", "ContactId": "c", "EventType": "SEGMENTS",
                "Segments": [{"Transcript": {"Id": t.segment_id, "ParticipantId": "p", "ParticipantRole": role,
                "Content": t.text, "BeginOffsetMillis": s, "EndOffsetMillis": e, "Sentiment": "NEUTRAL"}}]})
        }
        Format::Genesys => json!({"topicName": "v2.conversations.c.transcription", "eventBody": {
            "conversationId": "c", "transcripts": [{"utteranceId": t.segment_id, "isFinal": t.is_final,
            "channel": if t.speaker == Role::Customer { "EXTERNAL" } else { "INTERNAL" },
            "alternatives": [{"transcript": t.text, "confidence": 0.9, "offsetMs": s, "durationMs": e.saturating_sub(s)}]}]}}),
        _ => return None,
    })
}

fn kinds(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| match v["type"].as_str() {
            Some("nudge") => Some(format!("nudge {}", v["kind"])),
            Some("boundary") => Some(format!("boundary {}", v["state"])),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_messages_coach_like_the_native_recording() {
    let lex = product_lexicon();
    let (addr, stop, handle) = start_app(App::new(lex.clone(), Policy::default())).await;
    let picked = ["01", "06", "10"].map(fixture);
    let formats = [
        ("deepgram", Format::Deepgram),
        ("aws-transcribe", Format::AwsTranscribe),
        ("contact-lens", Format::ContactLens),
        ("genesys", Format::Genesys),
    ];
    for f in &picked {
        let lines = replay::read_fixture(f).unwrap();
        // The native recording without its start (engines do not send one), as the
        // baseline: the kinds raised and the record's counters.
        let native: Vec<replay::Line> = lines
            .iter()
            .filter(|l| !matches!(l.msg, Inbound::Start(_)))
            .cloned()
            .collect();
        let native_out = replay::format_json(&replay::coach(&lex, &Policy::default(), &native));
        // Contact Lens sends finals only (its partials come as pieces).
        let finals: Vec<replay::Line> = native
            .iter()
            .filter(|l| !matches!(&l.msg, Inbound::Transcript(t) if !t.is_final))
            .cloned()
            .collect();
        let finals_out = replay::format_json(&replay::coach(&lex, &Policy::default(), &finals));
        for (name, format) in formats {
            let mut msgs: Vec<String> = native
                .iter()
                .filter_map(|l| match &l.msg {
                    Inbound::Transcript(t) => encode(format, t).map(|v| v.to_string()),
                    _ => None,
                })
                .collect();
            let end = match format {
                Format::ContactLens => r#"{"EventType":"COMPLETED","ContactId":"c"}"#.to_string(),
                _ => String::new(),
            };
            let call_id = format!("c-{name}-{}", f.file_stem().unwrap().to_string_lossy());
            // Offline, the same messages through the same adapter, for the call the URL
            // names.
            let mut adapter = Adapter::new(format, None);
            let start = format!(r#"{{"type":"start","call_id":"{call_id}"}}"#);
            let mut events: Vec<replay::Line> = vec![replay::Line {
                line: 0,
                msg: keel::protocol::decode_inbound(&start).unwrap(),
            }];
            for m in msgs
                .iter()
                .chain(std::iter::once(&end).filter(|e| !e.is_empty()))
            {
                for msg in adapter.decode(m).unwrap() {
                    events.push(replay::Line { line: 0, msg });
                }
            }
            if end.is_empty() {
                let native_end = native.last().unwrap().clone();
                assert!(matches!(native_end.msg, Inbound::End(_)));
                events.push(native_end.clone());
                msgs.push(keel::protocol::encode(&native_end.msg));
            } else {
                msgs.push(end);
            }
            let offline = replay::format_json(&replay::coach(&lex, &Policy::default(), &events));

            let url = format!("ws://{addr}/v1/calls/{call_id}/stream?format={name}");
            let (mut ws, _) = connect_async(url).await.unwrap();
            assert!(next_text(&mut ws).await.contains("\"type\":\"session\""));
            for m in &msgs {
                ws.send(Message::Text(m.clone().into())).await.unwrap();
            }
            let mut live = String::new();
            loop {
                let t = next_text(&mut ws).await;
                assert!(!t.contains("\"type\":\"error\""), "{name}: {t}");
                live.push_str(&t);
                live.push('\n');
                if t.starts_with("{\"type\":\"record\"") {
                    break;
                }
            }
            assert_eq!(live, offline, "{name} {}: live equals offline", f.display());
            let baseline = if format == Format::ContactLens {
                &finals_out
            } else {
                &native_out
            };
            assert_eq!(
                kinds(&live),
                kinds(baseline),
                "{name} {}: the same nudges and boundary transitions as the native recording",
                f.display()
            );
            let _ = ws.close(None).await;
            let _ = ws.next().await;
        }
    }
    stop.send(()).unwrap();
    handle.await.unwrap();
}
