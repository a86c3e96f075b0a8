//! Reading lexicon files: TOML with `[[category]]` tables, validated field by field.
//! Every error names the file, the line and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{template, Kind, SpeakerFilter};

/// One problem in a lexicon file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexiconError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for LexiconError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

impl std::error::Error for LexiconError {}

/// All problems found in a lexicon set (loading reports every file's errors at once).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct LexiconErrors(pub Vec<LexiconError>);

/// A text with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lined {
    pub text: String,
    pub line: usize,
}

/// A category as written in a file, validated.
#[derive(Debug, Clone)]
pub struct SourceCategory {
    pub id: String,
    pub speaker: SpeakerFilter,
    pub kind: Kind,
    pub tag: Option<String>,
    pub description: String,
    pub negatable: bool,
    pub reportable: bool,
    pub directed: bool,
    pub vocative: bool,
    pub entries: Vec<Lined>,
    pub templates: Vec<Lined>,
    pub exceptions: Vec<Lined>,
    pub positive: Vec<Lined>,
    pub negative: Vec<Lined>,
    pub situational: Vec<Lined>,
    pub file: String,
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    category: Vec<Spanned<RawCategory>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    id: Spanned<String>,
    speaker: Spanned<String>,
    kind: Spanned<String>,
    tag: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    negatable: bool,
    #[serde(default)]
    reportable: bool,
    #[serde(default)]
    directed: bool,
    #[serde(default)]
    vocative: bool,
    #[serde(default)]
    entries: Vec<Spanned<String>>,
    #[serde(default)]
    templates: Vec<Spanned<String>>,
    #[serde(default)]
    exceptions: Vec<Spanned<String>>,
    #[serde(default)]
    positive: Vec<Spanned<String>>,
    #[serde(default)]
    negative: Vec<Spanned<String>>,
    #[serde(default)]
    situational: Vec<Spanned<String>>,
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Parses one file's text. `name` is how errors name the file.
pub fn parse_file(name: &str, src: &str) -> Result<Vec<SourceCategory>, Vec<LexiconError>> {
    let err = |line: usize, reason: String| LexiconError {
        file: name.to_string(),
        line,
        reason,
    };
    let raw: RawFile = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| line_of(src, s.start)).unwrap_or(1);
            let msg = e.message().trim().replace('\n', " ");
            return Err(vec![err(line, msg)]);
        }
    };
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for cat in raw.category {
        let cat_line = line_of(src, cat.span().start);
        let cat = cat.into_inner();
        let lined = |v: Vec<Spanned<String>>| -> Vec<Lined> {
            v.into_iter()
                .map(|s| Lined {
                    line: line_of(src, s.span().start),
                    text: s.into_inner(),
                })
                .collect()
        };
        let id_line = line_of(src, cat.id.span().start);
        let id = cat.id.get_ref().clone();
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
        {
            errors.push(err(
                id_line,
                format!("id {id:?}: use lowercase letters, digits, '.' and '_'"),
            ));
        }
        let speaker = match SpeakerFilter::parse(cat.speaker.get_ref()) {
            Some(s) => s,
            None => {
                errors.push(err(
                    line_of(src, cat.speaker.span().start),
                    format!(
                        "{id}: speaker {:?}: expected agent, customer or any",
                        cat.speaker.get_ref()
                    ),
                ));
                SpeakerFilter::Any
            }
        };
        let kind = match Kind::parse(cat.kind.get_ref()) {
            Some(k) => k,
            None => {
                errors.push(err(
                    line_of(src, cat.kind.span().start),
                    format!(
                        "{id}: kind {:?} is not a known kind (see lexicons/README.md)",
                        cat.kind.get_ref()
                    ),
                ));
                continue;
            }
        };
        let tag = cat.tag.as_ref().map(|t| t.get_ref().clone());
        match (kind.tags(), &cat.tag) {
            (Some(tags), Some(t)) if !tags.contains(&t.get_ref().as_str()) => errors.push(err(
                line_of(src, t.span().start),
                format!(
                    "{id}: tag {:?}: expected one of {}",
                    t.get_ref(),
                    tags.join(", ")
                ),
            )),
            (Some(tags), None) if !kind.tag_optional() => errors.push(err(
                cat_line,
                format!(
                    "{id}: kind {} needs a tag: one of {}",
                    kind.as_str(),
                    tags.join(", ")
                ),
            )),
            (None, Some(t)) => errors.push(err(
                line_of(src, t.span().start),
                format!("{id}: kind {} takes no tag", kind.as_str()),
            )),
            _ => {}
        }
        if cat.vocative && !cat.directed {
            errors.push(err(
                cat_line,
                format!("{id}: vocative = true needs directed = true"),
            ));
        }
        if !cat.situational.is_empty() && !cat.directed {
            errors.push(err(
                line_of(src, cat.situational[0].span().start),
                format!("{id}: situational examples need directed = true"),
            ));
        }
        let entries = lined(cat.entries);
        let templates = lined(cat.templates);
        if entries.is_empty() && templates.is_empty() {
            errors.push(err(cat_line, format!("{id}: no entries and no templates")));
        }
        for e in &entries {
            if let Err(reason) = super::compile::check_entry_syntax(&e.text) {
                errors.push(err(e.line, format!("{id}: entry {:?}: {reason}", e.text)));
            }
        }
        for t in &templates {
            if let Err(reason) = template::expand(&t.text) {
                errors.push(err(
                    t.line,
                    format!("{id}: template {:?}: {reason}", t.text),
                ));
            }
        }
        let exceptions = lined(cat.exceptions);
        for x in &exceptions {
            if x.text.contains("...") || x.text.contains('…') {
                errors.push(err(
                    x.line,
                    format!(
                        "{id}: exception {:?}: gaps are not allowed in exceptions",
                        x.text
                    ),
                ));
            }
        }
        out.push(SourceCategory {
            id,
            speaker,
            kind,
            tag,
            description: cat.description,
            negatable: cat.negatable,
            reportable: cat.reportable,
            directed: cat.directed,
            vocative: cat.vocative,
            entries,
            templates,
            exceptions,
            positive: lined(cat.positive),
            negative: lined(cat.negative),
            situational: lined(cat.situational),
            file: name.to_string(),
            line: cat_line,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The lexicon files under `dir` (recursively), sorted, as (display name, path).
pub fn lexicon_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files
        .into_iter()
        .map(|p| (p.display().to_string(), p))
        .collect())
}

/// Each file's path (relative to the lexicon folder) and contents.
pub type Sources = Vec<(String, String)>;

/// Reads every `*.toml` file under `dir`; returns the categories and the files' names
/// and contents (for the version hash), or every error found.
pub fn load_dir(dir: &Path) -> Result<(Vec<SourceCategory>, Sources), LexiconErrors> {
    let files = lexicon_files(dir).map_err(|e| {
        LexiconErrors(vec![LexiconError {
            file: dir.display().to_string(),
            line: 0,
            reason: e.to_string(),
        }])
    })?;
    if files.is_empty() {
        return Err(LexiconErrors(vec![LexiconError {
            file: dir.display().to_string(),
            line: 0,
            reason: "no lexicon files (*.toml) found".into(),
        }]));
    }
    let mut cats = Vec::new();
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for (name, path) in files {
        let src = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                errors.push(LexiconError {
                    file: name,
                    line: 0,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let rel = path
            .strip_prefix(dir)
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .unwrap_or_else(|_| name.clone());
        match parse_file(&name, &src) {
            Ok(c) => cats.extend(c),
            Err(e) => errors.extend(e),
        }
        sources.push((rel, src));
    }
    let mut seen = std::collections::HashMap::new();
    for c in &cats {
        if let Some((f, l)) = seen.insert(c.id.clone(), (c.file.clone(), c.line)) {
            errors.push(LexiconError {
                file: c.file.clone(),
                line: c.line,
                reason: format!("{}: duplicate category id (first defined at {f}:{l})", c.id),
            });
        }
    }
    if errors.is_empty() {
        Ok((cats, sources))
    } else {
        Err(LexiconErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_and_line() {
        let src = "[[category]]\nid = \"a.b\"\nspeaker = \"agnt\"\nkind = \"validation\"\nentries = [\"i see\"]\n";
        let e = parse_file("x.toml", src).unwrap_err();
        assert_eq!(e[0].line, 3);
        assert!(e[0].reason.contains("speaker"), "{}", e[0]);

        let src = "[[category]]\nid = \"a.b\"\nspeaker = \"agent\"\nkind = \"validation\"\nentires = [\"i see\"]\n";
        let e = parse_file("x.toml", src).unwrap_err();
        assert_eq!(e[0].line, 5, "{}", e[0]);
        assert!(e[0].reason.contains("entires"), "{}", e[0]);

        let src = "[[category]]\nid = \"a.b\"\nspeaker = \"agent\"\nkind = \"validation\"\nentries = [\"i see\",\n \"... oops\"]\n";
        let e = parse_file("x.toml", src).unwrap_err();
        assert_eq!(e[0].line, 6, "{}", e[0]);

        let src = "[[category]]\nid = \"a.b\"\nspeaker = \"agent\"\nkind = \"remedy\"\ntag = \"cash\"\nentries = [\"x y\"]\n";
        let e = parse_file("x.toml", src).unwrap_err();
        assert_eq!(e[0].line, 5, "{}", e[0]);

        let src = "[[category]\nid = 1";
        let e = parse_file("x.toml", src).unwrap_err();
        assert_eq!(e[0].line, 1, "{}", e[0]);
    }
}
