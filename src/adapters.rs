//! Input adapters: speech engines' live transcript messages mapped to keel's native
//! events (`?format=` on the platform stream). Each adapter is a small state machine per
//! connection — some engines send no segment id, others send a transcript in pieces —
//! and, like the engine, is pure: the same messages give the same events.
//!
//! | `format` | engine | roles from |
//! |---|---|---|
//! | `native` | keel's own messages (`protocol.md`) | `speaker` |
//! | `deepgram` | Deepgram live `Results` | `channel_index` and `?channels=` |
//! | `aws-transcribe` | Amazon Transcribe streaming `TranscriptEvent` | `ChannelId` and `?channels=` |
//! | `contact-lens` | Amazon Connect Contact Lens real-time segments | `ParticipantRole` |
//! | `assemblyai` | AssemblyAI Universal-Streaming `Turn` | `speaker_label` (A, B, …) and `?channels=` |
//! | `google` | Google Speech-to-Text `StreamingRecognizeResponse` | `channelTag` and `?channels=` |
//! | `genesys` | Genesys Cloud transcription notifications | `channel` (`INTERNAL` agent, `EXTERNAL` customer) |
//!
//! `?channels=customer,agent` names the role of channel 0, 1, … (the default). keel's own
//! `start` and `end` messages are accepted in every format, so a platform can open and
//! end a call whatever engine transcribes it. Messages an adapter has no use for
//! (metadata, speech-started events) produce nothing; a message missing a field it needs
//! is answered with an `error` naming the field.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::protocol::{DecodeError, End, EndReason, Inbound, Role, Start, Transcript};

/// The input formats of the platform stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Native,
    Deepgram,
    AwsTranscribe,
    ContactLens,
    AssemblyAi,
    Google,
    Genesys,
}

impl Format {
    pub const NAMES: &'static str =
        "native, deepgram, aws-transcribe, contact-lens, assemblyai, google, genesys";

    pub fn parse(s: &str) -> Result<Format, String> {
        Ok(match s {
            "native" => Format::Native,
            "deepgram" => Format::Deepgram,
            "aws-transcribe" | "transcribe" => Format::AwsTranscribe,
            "contact-lens" | "contactlens" => Format::ContactLens,
            "assemblyai" => Format::AssemblyAi,
            "google" => Format::Google,
            "genesys" => Format::Genesys,
            "twilio" => {
                return Err(
                    "\"twilio\": Twilio posts transcription callbacks over HTTP, not a websocket stream"
                        .into(),
                )
            }
            other => return Err(format!("{other:?} is not one of {}", Format::NAMES)),
        })
    }

    /// Whether the format labels roles itself (a channel map does not apply).
    pub fn has_roles(self) -> bool {
        matches!(self, Format::Native | Format::ContactLens | Format::Genesys)
    }
}

/// The role of each channel (or diarized speaker) index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channels(Vec<Role>);

impl Default for Channels {
    fn default() -> Self {
        Channels(vec![Role::Customer, Role::Agent])
    }
}

impl Channels {
    /// `customer,agent`: channel 0 is the customer, channel 1 the agent.
    pub fn parse(s: &str) -> Result<Channels, String> {
        let roles = s
            .split(',')
            .map(|r| {
                Role::parse(r.trim()).ok_or_else(|| {
                    format!("{r:?} is not a role (agent, customer, supervisor, system, bot)")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if roles.is_empty() {
            return Err("name at least one role".into());
        }
        Ok(Channels(roles))
    }

    fn role(&self, field: &str, index: usize) -> Result<Role, DecodeError> {
        self.0.get(index).copied().ok_or_else(|| {
            DecodeError::new(
                field,
                format!(
                    "channel {index} has no role: ?channels= names {} channel(s)",
                    self.0.len()
                ),
            )
        })
    }
}

/// One connection's adapter.
pub struct Adapter {
    format: Format,
    channels: Channels,
    /// Segments seen as partials and not yet closed.
    open: HashSet<String>,
    /// Contact Lens: the pieces of each transcript so far, with its first offset.
    pieces: HashMap<String, (String, u64)>,
    /// Google: per channel, finals so far and where the last one ended.
    google: HashMap<u64, (u64, u64)>,
}

/// Seconds (as engines and archives give them) to call-time milliseconds.
pub(crate) fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round().max(0.0) as u64
}

fn field<'a>(v: &'a Value, path: &str, name: &str) -> Result<&'a Value, DecodeError> {
    v.get(name)
        .ok_or_else(|| DecodeError::new(format!("{path}{name}"), "missing required field"))
}

fn string<'a>(v: &'a Value, path: &str, name: &str) -> Result<&'a str, DecodeError> {
    field(v, path, name)?
        .as_str()
        .ok_or_else(|| DecodeError::new(format!("{path}{name}"), "expected a string"))
}

fn number(v: &Value, path: &str, name: &str) -> Result<f64, DecodeError> {
    field(v, path, name)?
        .as_f64()
        .ok_or_else(|| DecodeError::new(format!("{path}{name}"), "expected a number"))
}

fn boolean(v: &Value, path: &str, name: &str) -> Result<bool, DecodeError> {
    field(v, path, name)?
        .as_bool()
        .ok_or_else(|| DecodeError::new(format!("{path}{name}"), "expected true or false"))
}

fn array<'a>(v: &'a Value, path: &str, name: &str) -> Result<&'a Vec<Value>, DecodeError> {
    field(v, path, name)?
        .as_array()
        .ok_or_else(|| DecodeError::new(format!("{path}{name}"), "expected an array"))
}

/// The first alternative's transcript (`alternatives[0].transcript` in any casing).
fn first_alternative(v: &Value, path: &str, alts: &str, text: &str) -> Result<String, DecodeError> {
    let list = array(v, path, alts)?;
    match list.first() {
        None => Ok(String::new()),
        Some(a) => Ok(string(a, &format!("{path}{alts}[0]."), text)?.to_string()),
    }
}

impl Adapter {
    pub fn new(format: Format, channels: Option<Channels>) -> Adapter {
        Adapter {
            format,
            channels: channels.unwrap_or_default(),
            open: HashSet::new(),
            pieces: HashMap::new(),
            google: HashMap::new(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Maps one message to the native events it stands for (none, one or several).
    pub fn decode(&mut self, text: &str) -> Result<Vec<Inbound>, DecodeError> {
        if self.format == Format::Native {
            return crate::protocol::decode_inbound(text).map(|m| vec![m]);
        }
        let v: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::new("message", format!("not valid JSON ({e})")))?;
        if !v.is_object() {
            return Err(DecodeError::new("message", "expected a JSON object"));
        }
        // keel's own start and end (no engine sends messages of these types) open and
        // end the call in every format.
        if matches!(v.get("type").and_then(Value::as_str), Some("start" | "end")) {
            return crate::protocol::decode_inbound(text).map(|m| vec![m]);
        }
        match self.format {
            Format::Native => unreachable!("handled above"),
            Format::Deepgram => self.deepgram(&v),
            Format::AwsTranscribe => self.transcribe(&v),
            Format::ContactLens => self.contact_lens(&v),
            Format::AssemblyAi => self.assemblyai(&v),
            Format::Google => self.google(&v),
            Format::Genesys => self.genesys(&v),
        }
    }

    /// The native transcript of one engine result, unless it is silence: an empty
    /// result closes a segment only if it was open.
    fn segment(
        &mut self,
        id: String,
        speaker: Role,
        text: String,
        is_final: bool,
        start_ms: u64,
        end_ms: u64,
    ) -> Option<Inbound> {
        let keep = if is_final {
            self.open.remove(&id) || !text.trim().is_empty()
        } else if text.trim().is_empty() {
            false
        } else {
            self.open.insert(id.clone());
            true
        };
        keep.then(|| {
            Inbound::Transcript(Transcript {
                segment_id: id,
                speaker,
                text,
                is_final,
                start_ms: Some(start_ms),
                end_ms: Some(end_ms.max(start_ms)),
                seq: None,
            })
        })
    }

    fn deepgram(&mut self, v: &Value) -> Result<Vec<Inbound>, DecodeError> {
        if v.get("type").and_then(Value::as_str) != Some("Results") {
            return Ok(Vec::new());
        }
        let ch = array(v, "", "channel_index")?
            .first()
            .and_then(Value::as_u64)
            .ok_or_else(|| DecodeError::new("channel_index", "expected [channel, count]"))?;
        let start = number(v, "", "start")?;
        let duration = number(v, "", "duration")?;
        let is_final = boolean(v, "", "is_final")?;
        let text = first_alternative(
            field(v, "", "channel")?,
            "channel.",
            "alternatives",
            "transcript",
        )?;
        let speaker = self.channels.role("channel_index", ch as usize)?;
        let (s, e) = (ms(start), ms(start + duration));
        let id = format!("{ch}:{s}");
        Ok(self
            .segment(id, speaker, text, is_final, s, e)
            .into_iter()
            .collect())
    }

    fn transcribe(&mut self, v: &Value) -> Result<Vec<Inbound>, DecodeError> {
        // The event itself, or wrapped as {"TranscriptEvent": …}.
        let (v, path) = match v.get("TranscriptEvent") {
            Some(inner) => (inner, "TranscriptEvent."),
            None => (v, ""),
        };
        let results = array(
            field(v, path, "Transcript")?,
            &format!("{path}Transcript."),
            "Results",
        )?;
        let mut out = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let p = format!("{path}Transcript.Results[{i}].");
            let id = string(r, &p, "ResultId")?.to_string();
            let is_final = !boolean(r, &p, "IsPartial")?;
            let (s, e) = (
                ms(number(r, &p, "StartTime")?),
                ms(number(r, &p, "EndTime")?),
            );
            let ch = match r.get("ChannelId").and_then(Value::as_str) {
                None => 0,
                Some(c) => c
                    .strip_prefix("ch_")
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| DecodeError::new(format!("{p}ChannelId"), "expected ch_N"))?,
            };
            let speaker = self.channels.role(&format!("{p}ChannelId"), ch)?;
            let text = first_alternative(r, &p, "Alternatives", "Transcript")?;
            out.extend(self.segment(id, speaker, text, is_final, s, e));
        }
        Ok(out)
    }

    fn contact_lens(&mut self, v: &Value) -> Result<Vec<Inbound>, DecodeError> {
        let event = string(v, "", "EventType")?;
        match event {
            "STARTED" => {
                let call_id = string(v, "", "ContactId")?.to_string();
                return Ok(vec![Inbound::Start(Start {
                    locale: v
                        .get("LanguageCode")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    ..Start::new(call_id)
                })]);
            }
            "COMPLETED" => {
                return Ok(vec![Inbound::End(End {
                    reason: EndReason::Completed,
                })])
            }
            "FAILED" => {
                return Ok(vec![Inbound::End(End {
                    reason: EndReason::Dropped,
                })])
            }
            "SEGMENTS" => {}
            other => {
                return Err(DecodeError::new(
                    "EventType",
                    format!("{other:?} is not STARTED, SEGMENTS, COMPLETED or FAILED"),
                ))
            }
        }
        let role = |r: &str, f: &str| -> Result<Role, DecodeError> {
            Ok(match r {
                "AGENT" => Role::Agent,
                "CUSTOMER" => Role::Customer,
                "SYSTEM" => Role::System,
                "CUSTOM_BOT" => Role::Bot,
                "SUPERVISOR" => Role::Supervisor,
                other => {
                    return Err(DecodeError::new(
                        f,
                        format!(
                            "{other:?} is not AGENT, CUSTOMER, SYSTEM, CUSTOM_BOT or SUPERVISOR"
                        ),
                    ))
                }
            })
        };
        // The fields utterances (partial) and transcripts (final) share.
        let common =
            |seg: &Value, p: &str, id: &str| -> Result<(String, Role, u64, u64), DecodeError> {
                Ok((
                    string(seg, p, id)?.to_string(),
                    role(
                        string(seg, p, "ParticipantRole")?,
                        &format!("{p}ParticipantRole"),
                    )?,
                    number(seg, p, "BeginOffsetMillis")? as u64,
                    number(seg, p, "EndOffsetMillis")? as u64,
                ))
            };
        let mut out = Vec::new();
        for (i, seg) in array(v, "", "Segments")?.iter().enumerate() {
            let p = format!("Segments[{i}].");
            if let Some(u) = seg.get("Utterance") {
                let p = format!("{p}Utterance.");
                let (id, speaker, begin, end) = common(u, &p, "TranscriptId")?;
                let piece = string(u, &p, "PartialContent")?;
                // Pieces of one transcript follow each other: collect them.
                let entry = self
                    .pieces
                    .entry(id.clone())
                    .or_insert((String::new(), begin));
                if !entry.0.is_empty() && !piece.is_empty() {
                    entry.0.push(' ');
                }
                entry.0.push_str(piece.trim());
                let (text, first) = (entry.0.clone(), entry.1);
                out.extend(self.segment(id, speaker, text, false, first, end));
            } else if let Some(t) = seg.get("Transcript") {
                let p = format!("{p}Transcript.");
                let (id, speaker, begin, end) = common(t, &p, "Id")?;
                let text = string(t, &p, "Content")?.to_string();
                self.pieces.remove(&id);
                out.extend(self.segment(id, speaker, text, true, begin, end));
            }
            // Categories and other segment kinds carry no transcript.
        }
        Ok(out)
    }

    fn assemblyai(&mut self, v: &Value) -> Result<Vec<Inbound>, DecodeError> {
        match v.get("type").and_then(Value::as_str) {
            Some("Turn") => {}
            Some("Termination") => {
                return Ok(vec![Inbound::End(End {
                    reason: EndReason::Completed,
                })])
            }
            _ => return Ok(Vec::new()),
        }
        let order = field(v, "", "turn_order")?
            .as_u64()
            .ok_or_else(|| DecodeError::new("turn_order", "expected a whole number"))?;
        let is_final = boolean(v, "", "end_of_turn")?;
        let text = string(v, "", "transcript")?.to_string();
        let words = v.get("words").and_then(Value::as_array);
        let first = words.and_then(|w| w.first());
        let last = words.and_then(|w| w.last());
        let s = first
            .and_then(|w| w.get("start"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let e = last
            .and_then(|w| w.get("end"))
            .and_then(Value::as_u64)
            .unwrap_or(s);
        // A speaker label (A, B, …) picks a channel; without one, channel 0.
        let label = v
            .get("speaker_label")
            .and_then(Value::as_str)
            .or_else(|| first.and_then(|w| w.get("speaker")).and_then(Value::as_str));
        let index = match label {
            None => 0,
            Some(l) => match l.as_bytes() {
                [c] if c.is_ascii_uppercase() => (c - b'A') as usize,
                _ => {
                    return Err(DecodeError::new(
                        "speaker_label",
                        format!("{l:?} is not a speaker letter (A, B, …)"),
                    ))
                }
            },
        };
        let speaker = self.channels.role("speaker_label", index)?;
        let id = format!("turn-{order}");
        Ok(self
            .segment(id, speaker, text, is_final, s, e)
            .into_iter()
            .collect())
    }

    fn google(&mut self, v: &Value) -> Result<Vec<Inbound>, DecodeError> {
        let Some(results) = v.get("results") else {
            return Ok(Vec::new());
        };
        let results = results
            .as_array()
            .ok_or_else(|| DecodeError::new("results", "expected an array"))?;
        // Per channel: the final (if any), then the unfinished part, which replaces the
        // previous one.
        let mut unfinished: Vec<(u64, String, u64)> = Vec::new();
        let mut out = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let p = format!("results[{i}].");
            let tag = r
                .get("channelTag")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            let end = string(r, &p, "resultEndTime")?;
            let end_ms = end
                .strip_suffix('s')
                .and_then(|n| n.parse::<f64>().ok())
                .map(ms)
                .ok_or_else(|| {
                    DecodeError::new(
                        format!("{p}resultEndTime"),
                        "expected seconds like \"12.340s\"",
                    )
                })?;
            let is_final = r.get("isFinal").and_then(Value::as_bool).unwrap_or(false);
            let text = first_alternative(r, &p, "alternatives", "transcript")?;
            let speaker = self
                .channels
                .role(&format!("{p}channelTag"), (tag - 1) as usize)?;
            let (finals, start) = *self.google.entry(tag).or_insert((0, 0));
            if is_final {
                let id = format!("{tag}-{finals}");
                let text = text.trim().to_string();
                out.extend(self.segment(id, speaker, text, true, start, end_ms));
                self.google.insert(tag, (finals + 1, end_ms));
            } else {
                match unfinished.iter_mut().find(|u| u.0 == tag) {
                    Some(u) => {
                        u.1.push_str(&text);
                        u.2 = u.2.max(end_ms);
                    }
                    None => unfinished.push((tag, text, end_ms)),
                }
            }
        }
        for (tag, text, end_ms) in unfinished {
            let (finals, start) = self.google[&tag];
            let id = format!("{tag}-{finals}");
            let speaker = self
                .channels
                .role("results.channelTag", (tag - 1) as usize)?;
            let text = text.trim().to_string();
            out.extend(self.segment(id, speaker, text, false, start, end_ms));
        }
        Ok(out)
    }

    fn genesys(&mut self, v: &Value) -> Result<Vec<Inbound>, DecodeError> {
        // A notification wraps the body as {topicName, eventBody}.
        let (body, path) = match v.get("eventBody") {
            Some(b) => (b, "eventBody."),
            None => (v, ""),
        };
        let Some(list) = body.get("transcripts") else {
            return Ok(Vec::new());
        };
        let list = list
            .as_array()
            .ok_or_else(|| DecodeError::new(format!("{path}transcripts"), "expected an array"))?;
        // Offsets count from the start of transcription; call time from the session's.
        let shift = match (
            body.get("transcriptionStartTimeMs").and_then(Value::as_u64),
            body.get("sessionStartTimeMs").and_then(Value::as_u64),
        ) {
            (Some(t), Some(s)) => t.saturating_sub(s),
            _ => 0,
        };
        let mut out = Vec::new();
        for (i, t) in list.iter().enumerate() {
            let p = format!("{path}transcripts[{i}].");
            let id = string(t, &p, "utteranceId")?.to_string();
            let is_final = boolean(t, &p, "isFinal")?;
            let speaker = match string(t, &p, "channel")? {
                "INTERNAL" => Role::Agent,
                "EXTERNAL" => Role::Customer,
                other => {
                    return Err(DecodeError::new(
                        format!("{p}channel"),
                        format!("{other:?} is not INTERNAL or EXTERNAL"),
                    ))
                }
            };
            let alts = array(t, &p, "alternatives")?;
            let Some(a) = alts.first() else { continue };
            let ap = format!("{p}alternatives[0].");
            let text = string(a, &ap, "transcript")?.to_string();
            let offset = number(a, &ap, "offsetMs")? as u64 + shift;
            let duration = a.get("durationMs").and_then(Value::as_u64).unwrap_or(0);
            let end = offset + duration;
            out.extend(self.segment(id, speaker, text, is_final, offset, end));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(a: &mut Adapter, msg: &str) -> Vec<(String, Role, String, bool, u64, u64)> {
        a.decode(msg)
            .unwrap()
            .into_iter()
            .map(|m| match m {
                Inbound::Transcript(t) => (
                    t.segment_id,
                    t.speaker,
                    t.text,
                    t.is_final,
                    t.start_ms.unwrap(),
                    t.end_ms.unwrap(),
                ),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn deepgram_results_by_channel_and_start() {
        let mut a = Adapter::new(Format::Deepgram, Channels::parse("agent,customer").ok());
        assert!(a
            .decode(r#"{"type":"Metadata","request_id":"x"}"#)
            .unwrap()
            .is_empty());
        let m = r#"{"type":"Results","channel_index":[1,2],"start":41.2,"duration":1.7,"is_final":false,"channel":{"alternatives":[{"transcript":"this is the third time","confidence":0.9,"words":[]}]}}"#;
        assert_eq!(
            one(&mut a, m),
            vec![(
                "1:41200".into(),
                Role::Customer,
                "this is the third time".into(),
                false,
                41200,
                42900
            )]
        );
        let silent = r#"{"type":"Results","channel_index":[0,2],"start":3.0,"duration":1.0,"is_final":true,"channel":{"alternatives":[{"transcript":""}]}}"#;
        assert!(one(&mut a, silent).is_empty(), "silence is no segment");
        let e = a
            .decode(r#"{"type":"Results","channel_index":[1,2],"duration":1.7,"is_final":true,"channel":{"alternatives":[]}}"#)
            .unwrap_err();
        assert_eq!(e.field, "start");
        let e = a
            .decode(r#"{"type":"Results","channel_index":[5,6],"start":1,"duration":1,"is_final":true,"channel":{"alternatives":[{"transcript":"hi"}]}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("channel 5 has no role"), "{e}");
    }

    #[test]
    fn transcribe_results_by_result_id() {
        let mut a = Adapter::new(Format::AwsTranscribe, None);
        let m = r#"{"Transcript":{"Results":[{"ResultId":"r-1","IsPartial":false,"StartTime":1.5,"EndTime":3.25,"ChannelId":"ch_1","Alternatives":[{"Transcript":"I can help with that.","Items":[]}]}]}}"#;
        assert_eq!(
            one(&mut a, m),
            vec![(
                "r-1".into(),
                Role::Agent,
                "I can help with that.".into(),
                true,
                1500,
                3250
            )]
        );
        let e = a
            .decode(r#"{"Transcript":{"Results":[{"ResultId":"r-2","StartTime":1,"EndTime":2,"Alternatives":[]}]}}"#)
            .unwrap_err();
        assert_eq!(e.field, "Transcript.Results[0].IsPartial");
    }

    #[test]
    fn contact_lens_collects_utterance_pieces() {
        let mut a = Adapter::new(Format::ContactLens, None);
        let started = a
            .decode(
                r#"{"Version":"1.0.0","Channel":"VOICE","ContactId":"c-9","EventType":"STARTED"}"#,
            )
            .unwrap();
        assert!(matches!(&started[0], Inbound::Start(s) if s.call_id == "c-9"));
        let u = |piece: &str, end: u64| {
            format!(
                r#"{{"EventType":"SEGMENTS","ContactId":"c-9","Segments":[{{"Utterance":{{"Id":"u","TranscriptId":"t-1","ParticipantId":"p","ParticipantRole":"CUSTOMER","PartialContent":"{piece}","BeginOffsetMillis":1000,"EndOffsetMillis":{end}}}}}]}}"#
            )
        };
        assert_eq!(one(&mut a, &u("this is", 1500))[0].2, "this is");
        assert_eq!(
            one(&mut a, &u("ridiculous", 2100))[0].2,
            "this is ridiculous"
        );
        let t = r#"{"EventType":"SEGMENTS","ContactId":"c-9","Segments":[{"Transcript":{"Id":"t-1","ParticipantId":"p","ParticipantRole":"CUSTOMER","Content":"This is ridiculous.","BeginOffsetMillis":1000,"EndOffsetMillis":2300,"Sentiment":"NEGATIVE"}},{"Categories":{"MatchedCategories":[]}}]}"#;
        assert_eq!(
            one(&mut a, t),
            vec![(
                "t-1".into(),
                Role::Customer,
                "This is ridiculous.".into(),
                true,
                1000,
                2300
            )]
        );
        let ended = a
            .decode(r#"{"EventType":"COMPLETED","ContactId":"c-9"}"#)
            .unwrap();
        assert!(matches!(&ended[0], Inbound::End(e) if e.reason == EndReason::Completed));
    }

    #[test]
    fn assemblyai_turns_by_order_and_speaker() {
        let mut a = Adapter::new(Format::AssemblyAi, None);
        assert!(a.decode(r#"{"type":"Begin","id":"s"}"#).unwrap().is_empty());
        let m = r#"{"type":"Turn","turn_order":3,"end_of_turn":true,"turn_is_formatted":true,"transcript":"Where is my order?","speaker_label":"A","words":[{"start":5000,"end":5400,"text":"Where","word_is_final":true},{"start":5400,"end":6200,"text":"order?","word_is_final":true}]}"#;
        assert_eq!(
            one(&mut a, m),
            vec![(
                "turn-3".into(),
                Role::Customer,
                "Where is my order?".into(),
                true,
                5000,
                6200
            )]
        );
    }

    #[test]
    fn google_keys_results_by_channel_and_finals() {
        let mut a = Adapter::new(Format::Google, None);
        let interim = r#"{"results":[{"alternatives":[{"transcript":"this is"}],"stability":0.9,"channelTag":1,"resultEndTime":"1.200s"},{"alternatives":[{"transcript":" the third"}],"stability":0.1,"channelTag":1,"resultEndTime":"1.800s"}]}"#;
        assert_eq!(
            one(&mut a, interim),
            vec![(
                "1-0".into(),
                Role::Customer,
                "this is the third".into(),
                false,
                0,
                1800
            )]
        );
        let fin = r#"{"results":[{"alternatives":[{"transcript":"this is the third time"}],"isFinal":true,"channelTag":1,"resultEndTime":"2.400s"}]}"#;
        assert_eq!(
            one(&mut a, fin)[0],
            (
                "1-0".into(),
                Role::Customer,
                "this is the third time".into(),
                true,
                0,
                2400
            )
        );
        let next = r#"{"results":[{"alternatives":[{"transcript":"I am sorry"}],"channelTag":2,"resultEndTime":"3.000s"},{"alternatives":[{"transcript":"again"}],"channelTag":1,"resultEndTime":"3.100s"}]}"#;
        let got = one(&mut a, next);
        assert_eq!(got[0].0, "2-0");
        assert_eq!(got[0].1, Role::Agent);
        assert_eq!(
            (got[1].0.as_str(), got[1].4),
            ("1-1", 2400),
            "starts where the last final ended"
        );
    }

    #[test]
    fn genesys_notifications() {
        let mut a = Adapter::new(Format::Genesys, None);
        let m = r#"{"topicName":"v2.conversations.x.transcription","eventBody":{"conversationId":"x","sessionStartTimeMs":1000,"transcriptionStartTimeMs":3000,"transcripts":[{"utteranceId":"u-1","isFinal":true,"channel":"INTERNAL","alternatives":[{"transcript":"thanks for calling","confidence":0.9,"offsetMs":500,"durationMs":1200}]}]}}"#;
        assert_eq!(
            one(&mut a, m),
            vec![(
                "u-1".into(),
                Role::Agent,
                "thanks for calling".into(),
                true,
                2500,
                3700
            )]
        );
        let e = a
            .decode(r#"{"eventBody":{"transcripts":[{"utteranceId":"u","isFinal":true,"channel":"SIDEWAYS","alternatives":[]}]}}"#)
            .unwrap_err();
        assert_eq!(e.field, "eventBody.transcripts[0].channel");
    }

    #[test]
    fn formats_and_channel_maps_are_named_in_errors() {
        assert!(Format::parse("deepgram").is_ok());
        assert!(Format::parse("twilio").unwrap_err().contains("HTTP"));
        assert!(Format::parse("whisper")
            .unwrap_err()
            .contains("native, deepgram"));
        assert_eq!(
            Channels::parse("agent, customer").unwrap(),
            Channels(vec![Role::Agent, Role::Customer])
        );
        assert!(Channels::parse("agent,caller")
            .unwrap_err()
            .contains("caller"));
    }
}
