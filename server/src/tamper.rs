//! The payment page's scripts, accounted for (PCI DSS 4.0 6.4.3 and 11.6.1, as far as
//! software can):
//! - [`inventory`]: every script the hosted page may run, with its hash where Malipo
//!   ships it and a justification for each, generated at build time
//!   (`malipo script-inventory`, written by `scripts/build` to
//!   `target/site/script-inventory.json` and published at `/script-inventory.json`);
//! - [`check`]: fetches the payment page as a browser would and reports any change in its
//!   security-impacting headers or in any script it loads — against the inventory (for
//!   Malipo's own scripts) and against a baseline recorded by an earlier check (for
//!   everything, the processor's `session.js` and the inline loader included). For a
//!   cron job: `malipo tamper-check URL --baseline FILE` exits 1 on any change.

use serde_json::{Value, json};
use sha2::{Digest, Sha384};
use std::{collections::BTreeMap, path::Path};

/// The headers whose change matters for the page's security.
pub const SECURITY_HEADERS: [&str; 7] = [
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "strict-transport-security",
    "permissions-policy",
    "cross-origin-opener-policy",
];

/// `sha384-…`, as Subresource Integrity writes it.
pub fn sri(bytes: &[u8]) -> String {
    use base64::Engine;
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
    )
}

/// Every script the hosted page may run, with why. Malipo's own files are hashed from
/// `site` (the built site) and the binary; the inline scripts are authorised per
/// response by the CSP nonce; the processor's `session.js` is allowed by its exact URL.
pub fn inventory(site: &Path) -> Result<Value, std::io::Error> {
    let mut scripts = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(site.join("pkg"))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "js" || x == "wasm"))
        .collect();
    files.sort();
    for path in files {
        let name = format!(
            "/pkg/{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let wasm = path.extension().is_some_and(|x| x == "wasm");
        scripts.push(json!({
            "name": name,
            "kind": if wasm { "wasm" } else { "file" },
            "integrity": sri(&std::fs::read(&path)?),
            "justification": if wasm {
                "Malipo's own: the compiled live payment status and pay form (Rust, Leptos islands). Built from this repository."
            } else {
                "Malipo's own: loads the page's WebAssembly (the live payment status and the pay form). Built from this repository."
            },
        }));
    }
    scripts.extend([
        json!({"name": "/card.js", "kind": "file", "integrity": sri(crate::http::card_js().as_bytes()),
            "justification": "Malipo's own: the card option. Loads the processor's session.js on the shopper's tap and mounts its card frames; never sees a card number. Served with this integrity value."}),
        json!({"name": "island loader", "kind": "inline",
            "justification": "Malipo's own (Leptos HydrationScripts): starts /pkg/malipo.js. Authorised per response by the CSP nonce; its content is recorded by the first tamper check."}),
        json!({"name": "embed bridge", "kind": "inline",
            "justification": "Malipo's own, only when the page is framed by checkout.js on an allowed origin: tells that origin the page's size and the payment. Authorised per response by the CSP nonce."}),
        json!({"name": "card processor session.js", "kind": "third-party",
            "justification": "The card processor's Hosted Session script ([rails.card] base_url): mounts the frames where the card is typed. Loaded only on the shopper's tap; allowed by its exact URL in script-src; its content is recorded by the first tamper check."}),
    ]);
    Ok(json!({"page": "/pay/{id}", "scripts": scripts}))
}

/// What a check saw: the security headers, and each script's hash by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    pub headers: BTreeMap<String, String>,
    pub scripts: BTreeMap<String, String>,
}

/// Fetches `url` as a browser would and records its security headers and the hash of
/// every script it loads (files, module and WASM preloads, inline scripts, the card
/// processor's `session.js`). The per-response nonce is written as `'nonce-…'`.
pub async fn observe(client: &reqwest::Client, url: &str) -> Result<Observed, String> {
    let page = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let res = client
        .get(page.clone())
        .header("accept", "text/html")
        .header("user-agent", "Mozilla/5.0 (Malipo tamper check)")
        .send()
        .await
        .map_err(|e| format!("fetching the page: {}", e.without_url()))?;
    if !res.status().is_success() {
        return Err(format!("the page answered HTTP {}", res.status().as_u16()));
    }
    let mut headers = BTreeMap::new();
    for name in SECURITY_HEADERS {
        let value = res
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(without_nonce)
            .unwrap_or_else(|| "(absent)".into());
        headers.insert(name.to_owned(), value);
    }
    let html = res
        .text()
        .await
        .map_err(|e| format!("reading the page: {}", e.without_url()))?;
    let mut scripts = BTreeMap::new();
    for (i, inline) in inline_scripts(&html).iter().enumerate() {
        scripts.insert(format!("inline #{}", i + 1), sri(inline.as_bytes()));
    }
    for src in script_urls(&html) {
        let url = page.join(&src).map_err(|e| format!("{src}: {e}"))?;
        let bytes = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("fetching {src}: {}", e.without_url()))?
            .bytes()
            .await
            .map_err(|e| format!("reading {src}: {}", e.without_url()))?;
        // Our own by path; another origin's by its whole URL.
        let name = if url.origin() == page.origin() {
            url.path().to_owned()
        } else {
            url.as_str().to_owned()
        };
        scripts.insert(name, sri(&bytes));
    }
    Ok(Observed { headers, scripts })
}

/// The CSP with its per-response nonce written as `'nonce-…'`.
fn without_nonce(value: &str) -> String {
    value
        .split(' ')
        .map(|part| {
            if part.starts_with("'nonce-") {
                "'nonce-…'"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The contents of the page's inline `<script>` elements.
fn inline_scripts(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("<script") {
        let tag_end = match rest[at..].find('>') {
            Some(e) => at + e,
            None => break,
        };
        let tag = &rest[at..tag_end];
        let body_end = rest[tag_end..]
            .find("</script>")
            .map_or(rest.len(), |e| tag_end + e);
        if !tag.contains(" src=") {
            out.push(rest[tag_end + 1..body_end].to_owned());
        }
        rest = &rest[body_end.min(rest.len())..];
        if rest.len() <= "</script>".len() {
            break;
        }
        rest = &rest["</script>".len()..];
    }
    out
}

/// Every script the page loads: `<script src>`, module and WASM preloads, and the card
/// processor's `session.js` (named by the card form, loaded on the shopper's tap).
fn script_urls(html: &str) -> Vec<String> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[at..].split('"').next()?.replace("&amp;", "&"))
    };
    let mut out = Vec::new();
    for (i, _) in html.match_indices('<') {
        let Some(end) = html[i..].find('>') else {
            continue;
        };
        let tag = &html[i..i + end];
        let wanted = if tag.starts_with("<script") {
            attr(tag, "src")
        } else if tag.starts_with("<link")
            && attr(tag, "rel").is_some_and(|r| r == "modulepreload" || r == "preload")
            && !attr(tag, "as").is_some_and(|a| a == "style" || a == "font" || a == "image")
        {
            attr(tag, "href")
        } else if tag.starts_with("<form") {
            attr(tag, "data-session-js")
        } else {
            None
        };
        if let Some(url) = wanted
            && !out.contains(&url)
        {
            out.push(url);
        }
    }
    out
}

/// One finding of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Same as expected.
    Same(String),
    /// Different from the inventory or the baseline: the page was changed.
    Changed(String),
}

/// Compares what was seen with the inventory (Malipo's own scripts must have the hash
/// it was built with; a script it does not list is a change) and with a baseline from an
/// earlier check (every header and hash).
pub fn compare(seen: &Observed, inventory: &Value, baseline: Option<&Observed>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let listed: BTreeMap<&str, Option<&str>> = inventory["scripts"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| Some((s["name"].as_str()?, s["integrity"].as_str())))
                .collect()
        })
        .unwrap_or_default();
    for (name, hash) in &seen.scripts {
        let own = listed.get(name.as_str());
        let note = match own {
            Some(Some(want)) if *want == hash => Finding::Same(format!("{name}: as built")),
            Some(Some(_)) => Finding::Changed(format!(
                "{name}: not the script Malipo was built with ({hash})"
            )),
            // Inline and third-party: held to the baseline below.
            Some(None) => continue,
            None if name.starts_with("inline #") || name.starts_with("http") => continue,
            None => Finding::Changed(format!("{name}: a script the inventory does not list")),
        };
        findings.push(note);
    }
    if let Some(base) = baseline {
        for (name, value) in &seen.headers {
            match base.headers.get(name) {
                Some(was) if was == value => findings.push(Finding::Same(format!("header {name}"))),
                was => findings.push(Finding::Changed(format!(
                    "header {name}: {} → {value}",
                    was.map_or("(not recorded)", String::as_str)
                ))),
            }
        }
        for (name, hash) in &seen.scripts {
            match base.scripts.get(name) {
                Some(was) if was == hash => findings.push(Finding::Same(format!("script {name}"))),
                Some(_) => findings.push(Finding::Changed(format!(
                    "script {name}: content changed ({hash})"
                ))),
                None => findings.push(Finding::Changed(format!(
                    "script {name}: new since the baseline"
                ))),
            }
        }
        for name in base.scripts.keys() {
            if !seen.scripts.contains_key(name) {
                findings.push(Finding::Changed(format!(
                    "script {name}: gone since the baseline"
                )));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<html><head><link rel="stylesheet" href="/pkg/malipo.css"><link rel="modulepreload" href="/pkg/malipo.js" crossorigin="x"><link rel="preload" href="/pkg/malipo_bg.wasm" as="fetch"><script type="module" nonce="abc">load()</script></head><body><form class="card-form" data-session-js="https://gw.example/form/session.js"></form><script src="/card.js" integrity="sha384-x" defer></script></body></html>"#;

    #[test]
    fn every_script_is_found() {
        assert_eq!(
            script_urls(PAGE),
            [
                "/pkg/malipo.js",
                "/pkg/malipo_bg.wasm",
                "https://gw.example/form/session.js",
                "/card.js"
            ]
        );
        assert_eq!(inline_scripts(PAGE), ["load()"]);
        assert_eq!(
            without_nonce("script-src 'self' 'nonce-abc' x"),
            "script-src 'self' 'nonce-…' x"
        );
    }

    #[test]
    fn changes_are_reported() {
        let seen = Observed {
            headers: [("content-security-policy".to_owned(), "a".to_owned())].into(),
            scripts: [
                ("/card.js".to_owned(), "sha384-good".to_owned()),
                ("/evil.js".to_owned(), "sha384-x".to_owned()),
            ]
            .into(),
        };
        let inventory = json!({"scripts": [{"name": "/card.js", "integrity": "sha384-good"}]});
        let f = compare(&seen, &inventory, None);
        assert!(f.contains(&Finding::Same("/card.js: as built".into())));
        assert!(
            f.iter()
                .any(|f| matches!(f, Finding::Changed(w) if w.starts_with("/evil.js")))
        );
        let mut base = seen.clone();
        base.headers
            .insert("content-security-policy".into(), "b".into());
        let f = compare(&seen, &json!({"scripts": []}), Some(&base));
        assert!(f.iter().any(
            |f| matches!(f, Finding::Changed(w) if w.starts_with("header content-security-policy"))
        ));
    }
}
