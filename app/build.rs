//! Turns the shopper's text catalogues (`locales/*.toml`, one per language, edited by
//! translators) into typed Rust: an `enum Locale`, one function per text on `Locale`,
//! and, for the sections an island shows, a words type the island reads from one
//! language's templates passed as a prop (so the WASM carries no text tables).
//!
//! The build fails, naming the file and key, when a language misses a key English has,
//! has one English does not, or uses other placeholders than English's for it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::Path,
};

/// The languages, English first: it is the reference every other file must match, and
/// the one used when nothing else is known.
const LOCALES: [&str; 3] = ["en", "sw", "fr"];

/// Sections whose texts an island shows: they travel to the browser as one language's
/// templates in a prop, read through a generated `…Words` type.
const ISLANDS: [&str; 2] = ["live", "countdown"];

/// A section's texts: key → template.
type Section = BTreeMap<String, String>;

fn main() {
    println!("cargo::rerun-if-changed=locales");
    // Read when run, not baked in when built: one build script binary serves every
    // checkout sharing the target directory (CI's clone and a developer's).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&manifest).join("locales");
    let mut catalogues: Vec<(String, String, BTreeMap<String, Section>)> = Vec::new();
    for code in LOCALES {
        let path = dir.join(format!("{code}.toml"));
        println!("cargo::rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        let table: toml::Table = text
            .parse()
            .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        let mut name = None;
        let mut sections = BTreeMap::new();
        for (section, value) in table {
            let toml::Value::Table(entries) = value else {
                fail(&format!("{code}.toml: `{section}` must be a [section]"));
            };
            let mut texts = Section::new();
            for (key, value) in entries {
                let toml::Value::String(template) = value else {
                    fail(&format!("{code}.toml: [{section}] {key} must be a string"));
                };
                if section == "meta" && key == "name" {
                    name = Some(template.clone());
                }
                texts.insert(key, template);
            }
            sections.insert(section, texts);
        }
        let name = name.unwrap_or_else(|| fail(&format!("{code}.toml: [meta] name missing")));
        catalogues.push((code.to_owned(), name, sections));
    }
    let english = catalogues[0].2.clone();
    check(&english, &catalogues);
    let out = generate(&english, &catalogues);
    let path = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("text.rs");
    std::fs::write(&path, out).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
}

fn fail(message: &str) -> ! {
    panic!("locale catalogue: {message}");
}

/// The placeholders of a template, in order of first appearance: `{wallet}` → `wallet`.
/// Braces are only for placeholders; anything else in braces is an error.
fn placeholders(template: &str, place: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            fail(&format!("{place}: a `}}` with no `{{`"));
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            fail(&format!("{place}: a `{{` with no `}}`"));
        };
        let name = &after[..close];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            fail(&format!("{place}: `{{{name}}}` is not a placeholder name"));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
        rest = &after[close + 1..];
    }
    names
}

fn check(
    english: &BTreeMap<String, Section>,
    catalogues: &[(String, String, BTreeMap<String, Section>)],
) {
    let mut seen = BTreeSet::new();
    for (section, texts) in english {
        for key in texts.keys() {
            if section != "meta" && !ISLANDS.contains(&section.as_str()) && !seen.insert(key) {
                fail(&format!("en.toml: `{key}` is used in two sections"));
            }
            if !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                fail(&format!("en.toml: [{section}] `{key}` must be snake_case"));
            }
        }
    }
    for (code, _, sections) in catalogues {
        for (section, texts) in english {
            let Some(theirs) = sections.get(section) else {
                fail(&format!("{code}.toml: section [{section}] is missing"));
            };
            for (key, template) in texts {
                let place = format!("{code}.toml: [{section}] {key}");
                let Some(translation) = theirs.get(key) else {
                    fail(&format!("{place} is missing"));
                };
                let mut want = placeholders(template, &place);
                let mut got = placeholders(translation, &place);
                want.sort();
                got.sort();
                if want != got {
                    fail(&format!(
                        "{place} has placeholders {got:?}, English has {want:?}"
                    ));
                }
                if translation.trim().is_empty() {
                    fail(&format!("{place} is empty"));
                }
                if translation.contains(['\n', '\t']) {
                    fail(&format!("{place}: a text is one line, without tabs"));
                }
            }
            for key in theirs.keys() {
                if !texts.contains_key(key) {
                    fail(&format!("{code}.toml: [{section}] {key} is not in en.toml"));
                }
            }
        }
        for section in sections.keys() {
            if !english.contains_key(section) {
                fail(&format!(
                    "{code}.toml: section [{section}] is not in en.toml"
                ));
            }
        }
    }
}

fn camel(s: &str) -> String {
    s.split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn generate(
    english: &BTreeMap<String, Section>,
    catalogues: &[(String, String, BTreeMap<String, Section>)],
) -> String {
    let variants: Vec<String> = catalogues.iter().map(|(c, _, _)| camel(c)).collect();
    let mut o = String::new();
    o.push_str("// Generated by app/build.rs from app/locales/*.toml: edit those, not this.\n\n");
    o.push_str("/// A language the shopper's pages speak.\n");
    o.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]\n");
    o.push_str("#[serde(rename_all = \"lowercase\")]\npub enum Locale {\n");
    for (code, name, _) in catalogues {
        let _ = writeln!(o, "    /// {name} (`{code}`).\n    {},", camel(code));
    }
    o.push_str("}\n\nimpl Locale {\n");
    let _ = writeln!(
        o,
        "    /// Every language, English (the fallback) first.\n    pub const ALL: [Locale; {}] = [{}];",
        variants.len(),
        variants
            .iter()
            .map(|v| format!("Locale::{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    o.push_str("    /// The language's code (`sw`), as in `?lang=` and `<html lang>`.\n");
    o.push_str("    pub const fn code(self) -> &'static str {\n        match self {\n");
    for (code, _, _) in catalogues {
        let _ = writeln!(o, "            Locale::{} => {code:?},", camel(code));
    }
    o.push_str("        }\n    }\n");
    o.push_str("    /// The language's name in itself (`Kiswahili`), for the switcher.\n");
    o.push_str("    pub const fn name(self) -> &'static str {\n        match self {\n");
    for (code, name, _) in catalogues {
        let _ = writeln!(o, "            Locale::{} => {name:?},", camel(code));
    }
    o.push_str("        }\n    }\n");
    for (section, texts) in english {
        if section == "meta" {
            continue;
        }
        if ISLANDS.contains(&section.as_str()) {
            let _ = writeln!(
                o,
                "    /// The [{section}] texts in this language, one per line, for the island's `words` prop."
            );
            let _ = writeln!(
                o,
                "    pub fn {section}_words(self) -> &'static str {{\n        match self {{"
            );
            for (code, _, sections) in catalogues {
                let joined = texts
                    .keys()
                    .map(|k| sections[section][k].as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                let _ = writeln!(o, "            Locale::{} => {joined:?},", camel(code));
            }
            o.push_str("        }\n    }\n");
            continue;
        }
        for (key, template) in texts {
            let names = placeholders(template, key);
            let _ = writeln!(o, "    /// [{section}] {:?}", template.replace('\n', " "));
            let args: String = names.iter().map(|n| format!(", {n}: &str")).collect();
            let ret = if names.is_empty() {
                "&'static str"
            } else {
                "String"
            };
            let _ = writeln!(o, "    pub fn {key}(self{args}) -> {ret} {{");
            // A text without placeholders is the match itself; one with them is filled.
            o.push_str(if names.is_empty() {
                "        match self {\n"
            } else {
                "        let template = match self {\n"
            });
            for (code, _, sections) in catalogues {
                let _ = writeln!(
                    o,
                    "            Locale::{} => {:?},",
                    camel(code),
                    sections[section][key]
                );
            }
            if names.is_empty() {
                o.push_str("        }\n    }\n");
            } else {
                o.push_str("        };\n");
                let pairs: Vec<String> = names.iter().map(|n| format!("({n:?}, {n})")).collect();
                let _ = writeln!(o, "        fill(template, &[{}])\n    }}", pairs.join(", "));
            }
        }
    }
    o.push_str("}\n");
    for section in ISLANDS {
        let texts = &english[section];
        let ty = format!("{}Words", camel(section));
        let _ = writeln!(
            o,
            "\n/// One language's [{section}] texts, read in the browser from the island's prop.\n\
             #[derive(Debug, Clone)]\npub struct {ty}(std::sync::Arc<str>);\n\nimpl {ty} {{\n\
             \x20   /// From [`Locale::{section}_words`]' lines.\n\
             \x20   pub fn parse(lines: &str) -> Self {{\n        Self(lines.into())\n    }}\n\
             \x20   #[inline(never)]\n\
             \x20   fn at(&self, i: usize) -> &str {{\n        self.0.split('\\n').nth(i).unwrap_or(\"\")\n    }}"
        );
        for (i, (key, template)) in texts.iter().enumerate() {
            let names = placeholders(template, key);
            let _ = writeln!(o, "    /// {:?}", template);
            let args: String = names.iter().map(|n| format!(", {n}: &str")).collect();
            let _ = writeln!(o, "    pub fn {key}(&self{args}) -> String {{");
            if names.is_empty() {
                let _ = writeln!(o, "        self.at({i}).to_owned()\n    }}");
            } else {
                let pairs: Vec<String> = names.iter().map(|n| format!("({n:?}, {n})")).collect();
                let _ = writeln!(
                    o,
                    "        fill(self.at({i}), &[{}])\n    }}",
                    pairs.join(", ")
                );
            }
        }
        o.push_str("}\n");
    }
    o
}
