//! The bridge between a framed checkout page and `checkout.js` on the merchant's page.
//!
//! Plain inline JavaScript rendered only in embed mode (so the WASM bundle does not
//! grow): it tells the embedding page when the payment succeeded, when the shopper
//! cancelled, and how tall the page is. It posts to the one origin the server checked,
//! and accepts messages only from that origin and from the parent window.

use leptos::prelude::*;

const BRIDGE: &str = r#"(function(){var P=__ORIGIN__,S=__SESSION__,d=document,sent=false;
function post(t,x){var m={source:"malipo",type:t,sessionId:S};if(x)for(var k in x)m[k]=x[k];parent.postMessage(m,P);}
function state(){var m=d.querySelector("main[data-state]");return m?m.getAttribute("data-state"):"";}
function check(){var p=d.querySelector('[data-live="paid"]');if(p&&!p.hidden&&!sent){sent=true;post("success");}}
function size(){post("resize",{height:d.documentElement.scrollHeight});}
new MutationObserver(function(){check();size();}).observe(d.body,{attributes:true,childList:true,subtree:true,attributeFilter:["hidden"]});
d.querySelectorAll('form.pay-form').forEach(function(f){f.action=f.getAttribute("action")+"?embed="+encodeURIComponent(P);});
var c=d.querySelector("a.cancel");if(c)c.addEventListener("click",function(e){e.preventDefault();post("cancel");});
addEventListener("message",function(e){if(e.origin!==P||e.source!==parent)return;var m=e.data;
if(m&&m.source==="malipo-embed"&&m.type==="hello"){post("ready",{state:state()});size();check();}});
post("ready",{state:state()});size();check();})();"#;

/// True for strings that can sit inside a JS string literal as they are: the checked
/// origin (`https://host:port`) and the session id (base62).
fn literal_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || ":/.-_[]".contains(c))
}

/// The `<script>` for an embedded page, or nothing if the inputs are not plainly safe.
pub fn bridge(origin: &str, session_id: &str) -> Option<impl IntoView + use<>> {
    if !literal_safe(origin) || !literal_safe(session_id) {
        return None;
    }
    let js = BRIDGE
        .replace("__ORIGIN__", &format!("\"{origin}\""))
        .replace("__SESSION__", &format!("\"{session_id}\""));
    // The page's CSP allows inline script only with this response's nonce.
    let nonce = leptos::nonce::use_nonce();
    Some(view! { <script data-malipo-bridge="" nonce=nonce inner_html=js></script> })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_origins_and_ids_are_inlined() {
        assert!(literal_safe("http://127.0.0.1:4100"));
        assert!(literal_safe("https://[::1]:8443"));
        assert!(literal_safe("cs_0123456789ABCDEFGHIJabcd"));
        assert!(!literal_safe("https://x\"+alert(1)+\""));
        assert!(!literal_safe("</script><script>"));
        assert!(!literal_safe(""));
    }
}
