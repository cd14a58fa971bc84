//! The merchant's dashboard over HTTP, as a browser without JavaScript drives it: forms,
//! cookies and redirects. Sign-up with the mailed link, two-factor sign-in, password
//! reset (and the 7pay regression), CSRF, throttling, payments and refunds.

use crate::helpers::{Db, TestApp, spawn_app_with};
use crate::paypal::{latest, location, on_paypal, press_paypal};
use malipo::accounts::totp;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) async fn app() -> TestApp {
    spawn_app_with(Db::Sqlite, |c| c.sandbox_delay_percent = 5).await
}

/// What a page answered.
pub(crate) struct Page {
    pub status: u16,
    pub body: String,
    pub location: Option<String>,
}

impl Page {
    /// The stable code a message or form error carries (`data-code="…"`).
    pub fn codes(&self) -> Vec<String> {
        self.body
            .split("data-code=\"")
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .map(str::to_owned)
            .collect()
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.codes().iter().any(|c| c == code)
    }
}

/// A browser: keeps cookies, and the CSRF token of the last page it loaded.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
    pub csrf: String,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            cookies: BTreeMap::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, res: reqwest::Response) -> Page {
        for c in res.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            assert!(
                attrs.contains("HttpOnly") && attrs.contains("SameSite=Lax"),
                "{c}"
            );
            if v.is_empty() || attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap();
        if let Some(token) = body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        {
            self.csrf = token.to_owned();
        }
        Page {
            status,
            body,
            location,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .app
            .client
            .get(format!("{}{path}", self.app.addr))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(res).await
    }

    /// Posts a form with this browser's CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(String, String)> = vec![("csrf".into(), self.csrf.clone())];
        form.extend(
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.post_raw(path, &form, &[]).await
    }

    pub async fn post_raw(
        &mut self,
        path: &str,
        form: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .app
            .client
            .post(format!("{}{path}", self.app.addr))
            .header("cookie", self.cookie_header())
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        self.take(res).await
    }
}

/// The newest link to `path_prefix` mailed to `to` (from the sandbox mailbox).
pub(crate) async fn mailed_link(app: &TestApp, to: &str, path_prefix: &str) -> Option<String> {
    app.store
        .sandbox_mail(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to == to)
        .find_map(|m| link_in(&m.body, path_prefix))
}

/// The path of the first link to `path_prefix` in a mail body.
pub(crate) fn link_in(body: &str, path_prefix: &str) -> Option<String> {
    let at = body.find(path_prefix)?;
    let rest = &body[at..];
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// Every mail the sandbox mailbox holds for `to`.
async fn mails_to(app: &TestApp, to: &str) -> Vec<malipo::store::SandboxMail> {
    app.store
        .sandbox_mail(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.to == to)
        .collect()
}

/// Mail is sent in the background: wait for it.
async fn wait_mail(app: &TestApp, to: &str, path_prefix: &str) -> String {
    for _ in 0..100 {
        if let Some(link) = mailed_link(app, to, path_prefix).await {
            return link;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no mail to {to} with a {path_prefix} link");
}

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Signs up and confirms the address: a browser signed in to a new merchant.
pub(crate) async fn signed_up<'a>(app: &'a TestApp, email: &str, business: &str) -> Browser<'a> {
    let mut b = Browser::new(app);
    b.get("/dashboard/sign-up").await;
    let page = b
        .post(
            "/dashboard/sign-up",
            &[
                ("business", business),
                ("email", email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.has_code("mail_sent"), "{}", page.body);
    let link = wait_mail(app, email, "/dashboard/verify/").await;
    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = b.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        page.location.as_deref(),
        Some("/dashboard/security?welcome=1")
    );
    b
}

/// The TOTP code for the step after now (the set-up used the current one).
fn code(secret: &str, steps_ahead: i64) -> String {
    let now = malipo::time::now_ms() / 1000;
    totp::code_at_step(
        &totp::base32_decode(secret).unwrap(),
        totp::step_of(now) + steps_ahead,
    )
}

/// Turns two-factor sign-in on: the secret and the recovery codes.
async fn enable_two_factor(b: &mut Browser<'_>) -> (String, Vec<String>) {
    b.get("/dashboard/security").await;
    let page = b.post("/dashboard/security/two-factor", &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg"), "a QR code drawn as SVG");
    let secret = page
        .body
        .split("data-secret=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let page = b
        .post(
            "/dashboard/security/two-factor/confirm",
            &[("code", &code(&secret, 0))],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.has_code("two_factor_on"));
    let codes: Vec<String> = page
        .body
        .split("data-recovery-codes=\"10\"")
        .nth(1)
        .and_then(|s| s.split_once('>').map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("{}", page.body))
        .split("</ul>")
        .next()
        .unwrap()
        .split("<li>")
        .skip(1)
        .map(|s| s.split("</li>").next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test]
async fn sign_up_confirm_turn_on_two_factor_sign_out_and_back_in_with_a_code() {
    let app = app().await;
    // The printed URL leads to the sign-in page, which leads to sign-up.
    let mut b = Browser::new(&app);
    let root = b.get("/").await;
    assert_eq!(root.location.as_deref(), Some("/dashboard"));
    let home = b.get("/dashboard").await;
    assert_eq!(home.location.as_deref(), Some("/dashboard/sign-in"));
    let sign_in = b.get("/dashboard/sign-in").await;
    assert!(sign_in.body.contains("href=\"/dashboard/sign-up\""));
    let csp = app
        .client
        .get(format!("{}/dashboard/sign-in", app.addr))
        .send()
        .await
        .unwrap()
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );

    // Unconfirmed: cannot sign in yet.
    let mut early = Browser::new(&app);
    early.get("/dashboard/sign-up").await;
    early
        .post(
            "/dashboard/sign-up",
            &[
                ("business", "Mara Lodge"),
                ("email", "Amina@Mara.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    early.get("/dashboard/sign-in").await;
    let refused = early
        .post(
            "/dashboard/sign-in",
            &[("email", "amina@mara.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.has_code("email_unverified"));

    // The mailed link confirms the address (once) and signs in.
    let link = wait_mail(&app, "amina@mara.example", "/dashboard/verify/").await;
    let mut b = Browser::new(&app);
    b.get(&link).await;
    // The link alone is not enough: the password of the sign-up confirms it.
    let wrong = b
        .post(&link, &[("password", "somebody else's password")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.has_code("wrong_password"));
    let confirmed = b.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(confirmed.status, 303);
    let again = Browser::new(&app).get(&link).await;
    assert_eq!(again.status, 410, "a link works once");
    assert!(again.has_code("link_expired"));
    let payments = b.get("/dashboard/payments").await;
    assert_eq!(payments.status, 200);
    assert!(payments.body.contains("Mara Lodge") && payments.has_code("no_payments"));

    let (secret, codes) = enable_two_factor(&mut b).await;
    b.get("/dashboard/payments").await;
    let out = b.post("/dashboard/sign-out", &[]).await;
    assert_eq!(
        out.location.as_deref(),
        Some("/dashboard/sign-in?done=signed_out")
    );
    assert_eq!(
        b.get("/dashboard/payments").await.location.as_deref(),
        Some("/dashboard/sign-in")
    );

    // The password alone is not enough any more.
    b.get("/dashboard/sign-in").await;
    let half = b
        .post(
            "/dashboard/sign-in",
            &[("email", "amina@mara.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        half.location.as_deref(),
        Some("/dashboard/sign-in/two-factor")
    );
    assert_eq!(
        b.get("/dashboard/payments").await.location.as_deref(),
        Some("/dashboard/sign-in/two-factor")
    );
    b.get("/dashboard/sign-in/two-factor").await;
    let wrong = b
        .post("/dashboard/sign-in/two-factor", &[("code", "000000")])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.has_code("wrong_code"));
    let ok = b
        .post(
            "/dashboard/sign-in/two-factor",
            &[("code", &code(&secret, 1))],
        )
        .await;
    assert_eq!(
        ok.location.as_deref(),
        Some("/dashboard/payments"),
        "{}",
        ok.body
    );
    assert_eq!(b.get("/dashboard/payments").await.status, 200);

    // A recovery code works once in place of a code.
    b.post("/dashboard/sign-out", &[]).await;
    for (attempt, expected) in [(0, "/dashboard/payments"), (1, "")] {
        let mut c = Browser::new(&app);
        c.get("/dashboard/sign-in").await;
        c.post(
            "/dashboard/sign-in",
            &[("email", "amina@mara.example"), ("password", PASSWORD)],
        )
        .await;
        c.get("/dashboard/sign-in/two-factor").await;
        let page = c
            .post(
                "/dashboard/sign-in/two-factor",
                &[("code", &codes[0].to_uppercase())],
            )
            .await;
        if attempt == 0 {
            assert_eq!(page.location.as_deref(), Some(expected), "{}", page.body);
        } else {
            assert_eq!(page.status, 401, "a recovery code works once");
        }
    }
}

#[tokio::test]
async fn the_sandbox_mailbox_shows_mail_to_this_machine_only_and_names_no_smtp() {
    let app = app().await;
    signed_up(&app, "juma@kilifi.example", "Kilifi Dhow Trips").await;
    let page = app
        .client
        .get(format!("{}/sandbox/mailbox", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(
        body.contains("Confirm your email address for Malipo")
            && body.contains("juma@kilifi.example")
    );
    // Behind a proxy we trust, a remote client sees nothing.
    let remote = spawn_app_with(Db::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    let res = remote
        .client
        .get(format!("{}/sandbox/mailbox", remote.addr))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// 7pay (2019): a reset could be sent to any address given a date of birth. Here an
/// attacker who knows the victim's email, phone and birthday, and owns another mailbox,
/// tries every shape of request: no link for the victim's account ever reaches them,
/// and the victim's password still works.
#[tokio::test]
async fn the_7pay_regression_a_reset_never_reaches_another_mailbox() {
    let app = app().await;
    let victim = "wanjiru@naivasha.example";
    let attacker = "eve@evil.example";
    signed_up(&app, victim, "Naivasha Camp").await;
    let mut eve = signed_up(&app, attacker, "Eve Tours").await;
    eve.post("/dashboard/sign-out", &[]).await;

    let mut tries: Vec<Vec<(String, String)>> = Vec::new();
    let with = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    tries.push(with(&[
        ("email", victim),
        ("phone", "+254712345678"),
        ("date_of_birth", "1990-04-01"),
        ("send_to", attacker),
        ("new_email", attacker),
        ("recovery_email", attacker),
    ]));
    tries.push(with(&[("email", victim), ("email", attacker)]));
    tries.push(with(&[("email", attacker), ("email", victim)]));
    tries.push(with(&[("email", &format!("{victim},{attacker}"))]));
    tries.push(with(&[("email", &format!("{victim};{attacker}"))]));
    tries.push(with(&[("email", &format!("{victim}\r\nBcc: {attacker}"))]));
    tries.push(with(&[("email", &format!("Wanjiru <{attacker}>"))]));
    tries.push(with(&[("email", &format!("\"{victim}\" <{attacker}>"))]));
    tries.push(with(&[("email", &victim.to_uppercase())]));
    // Signing up again with the victim's address mails the victim, not the caller.
    eve.get("/dashboard/sign-up").await;
    eve.post(
        "/dashboard/sign-up",
        &[
            ("business", "Naivasha Camp"),
            ("email", victim),
            ("password", "an attacker's own password"),
        ],
    )
    .await;
    // Asking for a new confirmation link of the victim's (confirmed) address: nothing.
    eve.get("/dashboard/verify-again").await;
    eve.post("/dashboard/verify-again", &[("email", victim)])
        .await;
    for form in tries {
        eve.get("/dashboard/forgot").await;
        let mut f = vec![("csrf".to_owned(), eve.csrf.clone())];
        f.extend(form);
        let page = eve.post_raw("/dashboard/forgot", &f, &[]).await;
        assert!(matches!(page.status, 200 | 400), "{}", page.status);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // Every mail went to the victim's own address or to the attacker's about their own
    // account: nothing to the attacker holds a link that touches the victim's account.
    let all = app.store.sandbox_mail(100).await.unwrap();
    for m in &all {
        assert!(m.to == victim || m.to == attacker, "mail to {}", m.to);
    }
    for m in all.iter().filter(|m| m.to == attacker) {
        assert!(!m.body.contains(victim), "{}", m.body);
        assert!(
            !m.body.contains("/dashboard/reset/"),
            "no reset asked for the attacker: {}",
            m.body
        );
    }
    let resets = mails_to(&app, victim).await;
    assert!(
        resets.iter().any(|m| m.body.contains("/dashboard/reset/")),
        "the victim was told"
    );
    // The attacker uses every link they received: none changes the victim's password.
    for m in all.iter().filter(|m| m.to == attacker) {
        for prefix in ["/dashboard/verify/", "/dashboard/reset/"] {
            if let Some(link) = link_in(&m.body, prefix) {
                eve.get(&link).await;
                eve.post(&link, &[("password", "attacker chose this one")])
                    .await;
            }
        }
    }
    // Guessing a link does nothing either.
    let guess = eve
        .get("/dashboard/reset/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(guess.status, 410);
    let mut v = Browser::new(&app);
    v.get("/dashboard/sign-in").await;
    let ok = v
        .post(
            "/dashboard/sign-in",
            &[("email", victim), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        ok.location.as_deref(),
        Some("/dashboard/payments"),
        "the victim's password still works"
    );
    let mut e = Browser::new(&app);
    e.get("/dashboard/sign-in").await;
    let no = e
        .post(
            "/dashboard/sign-in",
            &[("email", victim), ("password", "attacker chose this one")],
        )
        .await;
    assert_eq!(no.status, 401);
}

#[tokio::test]
async fn a_reset_link_works_once_ends_every_session_and_keeps_two_factor() {
    let app = app().await;
    let email = "baraka@tsavo.example";
    let mut first = signed_up(&app, email, "Tsavo Trails").await;
    let (secret, _) = enable_two_factor(&mut first).await;
    let mut anon = Browser::new(&app);
    anon.get("/dashboard/forgot").await;
    let sent = anon.post("/dashboard/forgot", &[("email", email)]).await;
    assert!(sent.has_code("mail_sent"));
    // An unknown address gets the same answer.
    anon.get("/dashboard/forgot").await;
    let same = anon
        .post("/dashboard/forgot", &[("email", "nobody@tsavo.example")])
        .await;
    assert_eq!(same.status, 200);
    assert!(same.has_code("mail_sent"));
    let link = wait_mail(&app, email, "/dashboard/reset/").await;
    anon.get(&link).await;
    let weak = anon.post(&link, &[("password", "short")]).await;
    assert_eq!(weak.status, 400);
    assert!(weak.has_code("weak_password"));
    let common = anon.post(&link, &[("password", "password1234")]).await;
    assert!(common.has_code("weak_password"));
    let done = anon
        .post(&link, &[("password", "a brand new passphrase")])
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some("/dashboard/sign-in?done=password_reset")
    );
    let reused = anon
        .post(&link, &[("password", "yet another passphrase")])
        .await;
    assert_eq!(reused.status, 410, "a reset link works once");
    // The earlier session ended.
    assert_eq!(
        first.get("/dashboard/payments").await.location.as_deref(),
        Some("/dashboard/sign-in")
    );
    // The new password works, and still asks for the second factor.
    let mut b = Browser::new(&app);
    b.get("/dashboard/sign-in").await;
    let half = b
        .post(
            "/dashboard/sign-in",
            &[("email", email), ("password", "a brand new passphrase")],
        )
        .await;
    assert_eq!(
        half.location.as_deref(),
        Some("/dashboard/sign-in/two-factor")
    );
    b.get("/dashboard/sign-in/two-factor").await;
    let ok = b
        .post(
            "/dashboard/sign-in/two-factor",
            &[("code", &code(&secret, 1))],
        )
        .await;
    assert_eq!(ok.location.as_deref(), Some("/dashboard/payments"));
}

#[tokio::test]
async fn forms_without_the_token_or_from_another_site_are_refused() {
    let app = app().await;
    signed_up(&app, "neema@arusha.example", "Arusha Shuttles").await;
    let mut b = Browser::new(&app);
    b.get("/dashboard/sign-in").await;
    let fields = |csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("email".to_owned(), "neema@arusha.example".to_owned()),
            ("password".to_owned(), PASSWORD.to_owned()),
        ]
    };
    let token = b.csrf.clone();
    for (form, headers) in [
        (fields(""), vec![]),
        (fields("0000"), vec![]),
        (fields(&token), vec![("origin", "https://evil.example")]),
        (fields(&token), vec![("sec-fetch-site", "cross-site")]),
        (fields(&token), vec![("origin", "null")]),
        (
            fields(&token),
            vec![("origin", "null"), ("sec-fetch-site", "same-site")],
        ),
    ] {
        let page = b.post_raw("/dashboard/sign-in", &form, &headers).await;
        assert_eq!(page.status, 403, "{headers:?}");
        assert!(page.has_code("csrf_failed"));
    }
    // Another browser's token does not fit this browser's cookie.
    let mut other = Browser::new(&app);
    other.get("/dashboard/sign-in").await;
    let page = b
        .post_raw("/dashboard/sign-in", &fields(&other.csrf), &[])
        .await;
    assert_eq!(page.status, 403);
    // A browser keeping its referrer says `Origin: null` but same-origin: taken.
    let page = b
        .post_raw(
            "/dashboard/sign-in",
            &fields(&token),
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/dashboard/payments"));
    b.get("/dashboard/payments").await;
    b.post("/dashboard/sign-out", &[]).await;
    b.get("/dashboard/sign-in").await;
    let token = b.csrf.clone();
    // The right token from this site is taken.
    let page = b
        .post_raw(
            "/dashboard/sign-in",
            &fields(&token),
            &[("origin", &app.addr), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/dashboard/payments"));
}

#[tokio::test]
async fn repeated_bad_passwords_are_throttled_with_a_clear_message() {
    let app = app().await;
    signed_up(&app, "otieno@kisumu.example", "Kisumu Boats").await;
    let mut b = Browser::new(&app);
    b.get("/dashboard/sign-in").await;
    for _ in 0..5 {
        let page = b
            .post(
                "/dashboard/sign-in",
                &[
                    ("email", "otieno@kisumu.example"),
                    ("password", "not my password at all"),
                ],
            )
            .await;
        assert_eq!(page.status, 401);
        assert!(page.has_code("wrong_password"));
    }
    // Even the right password is refused now, with the wait.
    let page = b
        .post(
            "/dashboard/sign-in",
            &[("email", "otieno@kisumu.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 429);
    assert!(page.has_code("too_many_attempts"));
    assert!(
        page.body.contains("Try again in 15 minutes"),
        "{}",
        page.body
    );
    // Another account from the same address is not locked by this one.
    signed_up(&app, "akinyi@kisumu.example", "Kisumu Tours").await;
    let mut c = Browser::new(&app);
    c.get("/dashboard/sign-in").await;
    let page = c
        .post(
            "/dashboard/sign-in",
            &[("email", "akinyi@kisumu.example"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/dashboard/payments"));
}

/// A dashboard merchant's test secret key (made as the Developers page will).
pub(crate) async fn key_for(app: &TestApp, b: &mut Browser<'_>) -> String {
    use secrecy::ExposeSecret;
    let page = b.get("/dashboard/payments").await;
    assert_eq!(page.status, 200);
    // The merchant behind this browser's session: the only one with this name.
    let name = page
        .body
        .split("<span class=\"merchant\">")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap()
        .to_owned();
    let merchant = app.store.merchant_by_name(&name).await.unwrap().unwrap();
    let (_, key) = malipo::merchants::create_key(
        &app.store,
        &merchant.id,
        malipo::domain::ApiKeyKind::Secret,
        malipo::domain::Mode::Test,
    )
    .await
    .unwrap();
    key.token.expose_secret().to_owned()
}

/// A session of the key's merchant (`cs_…`).
pub(crate) async fn session_for(
    app: &TestApp,
    key: &str,
    amount: i64,
    currency: &str,
    reference: &str,
) -> String {
    let s: Value = app
        .client
        .post(format!("{}/v1/checkout/sessions", app.addr))
        .bearer_auth(key)
        .json(
            &json!({"amount": amount, "currency": currency, "reference": reference,
            "description": "Safari", "success_url": "https://lodge.example/ok",
            "cancel_url": "https://lodge.example/no"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    s["id"].as_str().unwrap().to_owned()
}

/// Pays a session with the sandbox PayPal's test buyer: the payment that paid it.
pub(crate) async fn pay_with_paypal(app: &TestApp, id: &str) -> malipo::store::AttemptRecord {
    let approve = location(&press_paypal(app, id).await);
    let back = location(&on_paypal(app, &approve, "buyer@example.com", true).await);
    app.client.get(&back).send().await.unwrap();
    latest(app, id).await
}

#[tokio::test]
async fn a_paid_payment_is_found_by_its_receipt_refunded_in_half_once_and_shown() {
    let app = app().await;
    let mut b = signed_up(&app, "halima@zanzibar.example", "Zanzibar Spice Tours").await;
    let key = key_for(&app, &mut b).await;
    let id = session_for(&app, &key, 20_000, "USD", "SPICE-42").await;
    let paid = pay_with_paypal(&app, &id).await;
    let receipt = paid.operator_receipt.clone().unwrap();

    let list = b.get(&format!("/dashboard/payments?q={receipt}")).await;
    assert!(
        list.body.contains("SPICE-42") && list.body.contains("data-status=\"paid\""),
        "{}",
        list.body
    );
    let none = b.get("/dashboard/payments?q=NO-SUCH-REF&status=paid").await;
    assert!(none.has_code("no_payments"));
    let csv = app
        .client
        .get(format!("{}/dashboard/payments.csv?status=paid", app.addr))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(
        csv.lines().count() == 2 && csv.contains("\"SPICE-42\"") && csv.contains(&receipt),
        "{csv}"
    );

    let detail = b.get(&format!("/dashboard/payments/{id}")).await;
    assert_eq!(detail.status, 200);
    assert!(detail.body.contains("session.created") || detail.body.contains("Timeline"));
    // Half, confirmed; the button pressed twice makes one refund.
    let confirm = b
        .get(&format!(
            "/dashboard/payments/{id}/refund?payment={}&amount=100",
            paid.id
        ))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("Refund USD 100") && confirm.body.contains("PayPal"),
        "{}",
        confirm.body
    );
    let key_field = confirm
        .body
        .split("name=\"key\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let form = [
        ("payment", paid.id.as_str()),
        ("amount_minor", "10000"),
        ("key", key_field.as_str()),
        ("reason", "one night"),
    ];
    let first = b
        .post(&format!("/dashboard/payments/{id}/refund"), &form)
        .await;
    let second = b
        .post(&format!("/dashboard/payments/{id}/refund"), &form)
        .await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(first.location, second.location, "the same refund");
    let refunds = app.store.refunds_of(&paid.id).await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].amount.minor(), 10_000);
    let detail = b.get(first.location.as_deref().unwrap()).await;
    assert!(
        detail.body.contains(&refunds[0].id.to_string())
            && detail.body.contains("data-status=\"succeeded\"")
    );
    let list = b.get("/dashboard/payments?status=refunded").await;
    assert!(
        list.body.contains("data-status=\"partially_refunded\""),
        "{}",
        list.body
    );
    // More than is left is refused before anything is sent.
    let over = b
        .get(&format!(
            "/dashboard/payments/{id}/refund?payment={}&amount=100.01",
            paid.id
        ))
        .await;
    assert_eq!(over.status, 400);
    assert!(over.has_code("refund_exceeds_payment"));
    // The audit log has it.
    let audit = b.get("/dashboard/audit").await;
    assert!(
        audit.body.contains("refund.created") && audit.body.contains("halima@zanzibar.example")
    );
}

#[tokio::test]
async fn mail_goes_out_over_a_real_smtp_server() {
    let url = std::env::var("MALIPO_TEST_SMTP_URL").expect(
        "MALIPO_TEST_SMTP_URL is not set: run the tests with scripts/test, which starts aiosmtpd",
    );
    let maildir = std::env::var("MALIPO_TEST_MAILDIR").expect("MALIPO_TEST_MAILDIR");
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.mail.smtp_url = secrecy::SecretString::from(url.clone());
    })
    .await;
    let email = format!(
        "smtp-{}@lamu.example",
        malipo::domain::ids::random_base62(8).to_lowercase()
    );
    let mut b = Browser::new(&app);
    b.get("/dashboard/sign-up").await;
    let page = b
        .post(
            "/dashboard/sign-up",
            &[
                ("business", "Lamu Dhows"),
                ("email", &email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(page.has_code("mail_sent"));
    assert!(
        !page.body.contains("sandbox mailbox"),
        "no mailbox with SMTP"
    );
    assert_eq!(
        app.client
            .get(format!("{}/sandbox/mailbox", app.addr))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let mut link = None;
    for _ in 0..100 {
        link = read_maildir(&maildir, &email).and_then(|m| link_in(&m, "/dashboard/verify/"));
        if link.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let link = link.expect("the confirmation mail reached the SMTP server");
    b.get(&link).await;
    let done = b.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(
        done.location.as_deref(),
        Some("/dashboard/security?welcome=1")
    );
}

/// The body of the mail to `to` in a Maildir, quoted-printable decoded.
pub(crate) fn read_maildir(dir: &str, to: &str) -> Option<String> {
    let entries = std::fs::read_dir(std::path::Path::new(dir).join("new")).ok()?;
    for e in entries.flatten() {
        let text = std::fs::read_to_string(e.path()).ok()?;
        if text
            .lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
        {
            return Some(decode_qp(&text));
        }
    }
    None
}

fn decode_qp(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An owner invites a viewer by mail; the viewer joins with a new password, sees the
/// payment, and cannot refund it (no button, and a forged form is refused).
#[tokio::test]
async fn an_invited_viewer_sees_payments_but_cannot_refund() {
    let app = app().await;
    let mut owner = signed_up(&app, "mwangi@amboseli.example", "Amboseli Lodge").await;
    let key = key_for(&app, &mut owner).await;
    let id = session_for(&app, &key, 5_000, "USD", "ELE-9").await;
    let paid = pay_with_paypal(&app, &id).await;

    owner.get("/dashboard/team").await;
    let sent = owner
        .post(
            "/dashboard/team/invite",
            &[("email", "wambui@amboseli.example"), ("role", "viewer")],
        )
        .await;
    assert_eq!(
        sent.location.as_deref(),
        Some("/dashboard/team?done=invited"),
        "{}",
        sent.body
    );
    let team = owner.get("/dashboard/team").await;
    assert!(
        team.body.contains("wambui@amboseli.example"),
        "the invitation is listed"
    );

    let link = wait_mail(&app, "wambui@amboseli.example", "/dashboard/invite/").await;
    let mut viewer = Browser::new(&app);
    let page = viewer.get(&link).await;
    assert!(page.body.contains("Join Amboseli Lodge") && page.body.contains("viewer"));
    let joined = viewer
        .post(&link, &[("password", "a viewer's long password")])
        .await;
    assert_eq!(
        joined.location.as_deref(),
        Some("/dashboard/payments"),
        "{}",
        joined.body
    );
    assert_eq!(
        viewer.get(&link).await.status,
        410,
        "an invitation works once"
    );

    let list = viewer.get("/dashboard/payments").await;
    assert!(list.body.contains("ELE-9") && list.body.contains("Amboseli Lodge"));
    let detail = viewer.get(&format!("/dashboard/payments/{id}")).await;
    assert!(
        !detail.body.contains("Refund…") && detail.has_code("forbidden"),
        "{}",
        detail.body
    );
    let confirm = viewer
        .get(&format!(
            "/dashboard/payments/{id}/refund?payment={}",
            paid.id
        ))
        .await;
    assert_eq!(confirm.status, 403);
    let forged = viewer
        .post(
            &format!("/dashboard/payments/{id}/refund"),
            &[
                ("payment", paid.id.as_str()),
                ("amount_minor", "5000"),
                ("key", "abcdefghijklmnopqrstuvwx"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.has_code("forbidden"));
    assert!(app.store.refunds_of(&paid.id).await.unwrap().is_empty());
    // Nor can a viewer invite, read the audit log or touch keys.
    assert_eq!(viewer.get("/dashboard/audit").await.status, 403);
    let invite = viewer
        .post(
            "/dashboard/team/invite",
            &[("email", "x@amboseli.example"), ("role", "owner")],
        )
        .await;
    assert_eq!(invite.status, 403);
    let key = viewer
        .post("/dashboard/developers/keys", &[("kind", "secret")])
        .await;
    assert_eq!(key.status, 403);

    // The owner removes the viewer: their session ends at once.
    let team = owner.get("/dashboard/team").await;
    let user = team
        .body
        .split("/dashboard/team/")
        .filter_map(|s| s.split('/').next())
        .find(|s| s.starts_with("usr_"))
        .unwrap()
        .to_owned();
    let removed = owner
        .post(&format!("/dashboard/team/{user}/remove"), &[])
        .await;
    assert_eq!(
        removed.location.as_deref(),
        Some("/dashboard/team?done=removed")
    );
    assert_eq!(
        viewer.get("/dashboard/payments").await.location.as_deref(),
        Some("/dashboard/sign-in")
    );
    // The last owner cannot be demoted or removed by anyone.
    let audit = owner.get("/dashboard/audit").await;
    assert!(audit.body.contains("team.invited") && audit.body.contains("team.removed"));
}

#[tokio::test]
async fn keys_are_shown_once_rolled_with_an_overlap_and_revoked() {
    let app = app().await;
    let mut b = signed_up(&app, "kiprop@iten.example", "Iten Running Camps").await;
    b.get("/dashboard/developers").await;
    let made = b
        .post("/dashboard/developers/keys", &[("kind", "secret")])
        .await;
    assert_eq!(
        made.status, 200,
        "fresh from sign-up: no re-authentication asked"
    );
    assert!(made.has_code("shown_once"));
    let secret = made
        .body
        .split("data-secret=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("sk_test_"));
    let works = |k: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/v1/account", app.addr))
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(works(secret.clone()).await, 200);
    // The list never shows it again.
    let page = b.get("/dashboard/developers").await;
    assert!(!page.body.contains(&secret));
    let key_id = page
        .body
        .split("/dashboard/developers/keys/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_owned();
    let rolled = b
        .post(&format!("/dashboard/developers/keys/{key_id}/roll"), &[])
        .await;
    assert_eq!(rolled.status, 200);
    let new_secret = rolled
        .body
        .split("data-secret=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(
        works(secret.clone()).await,
        200,
        "the old key works during the overlap"
    );
    assert_eq!(works(new_secret.clone()).await, 200);
    let revoked = b
        .post(&format!("/dashboard/developers/keys/{key_id}/revoke"), &[])
        .await;
    assert_eq!(
        revoked.location.as_deref(),
        Some("/dashboard/developers?done=revoked")
    );
    assert_eq!(works(secret).await, 401, "revoked ends the overlap");
    assert_eq!(works(new_secret).await, 200);
    // Webhook endpoints: the secret shown once; a bad URL says why.
    let bad = b
        .post(
            "/dashboard/developers/webhooks",
            &[("url", "not a url"), ("events", "*")],
        )
        .await;
    assert!(bad.has_code("parameter_invalid"));
    let hook = b
        .post(
            "/dashboard/developers/webhooks",
            &[("url", "https://iten.example/hooks"), ("events", "*")],
        )
        .await;
    assert!(
        hook.body.contains("whsec_") && hook.has_code("shown_once"),
        "{}",
        hook.body
    );
    let origins = b
        .post(
            "/dashboard/developers/origins",
            &[("origins", "https://iten.example\nnot an origin")],
        )
        .await;
    assert!(origins.has_code("invalid_origin"));
    let origins = b
        .post(
            "/dashboard/developers/origins",
            &[("origins", "https://iten.example")],
        )
        .await;
    assert_eq!(
        origins.location.as_deref(),
        Some("/dashboard/developers?done=origins")
    );
}

#[tokio::test]
async fn settings_put_the_support_contacts_and_colour_on_the_hosted_page() {
    let app = app().await;
    let mut b = signed_up(&app, "salma@lamu.example", "Lamu Sails").await;
    let key = key_for(&app, &mut b).await;
    b.get("/dashboard/settings").await;
    let pale = b
        .post(
            "/dashboard/settings",
            &[
                ("name", "Lamu Sails"),
                ("brand_color", "#ffff66"),
                ("support_phone", ""),
                ("support_email", ""),
                ("support_whatsapp", ""),
            ],
        )
        .await;
    assert_eq!(pale.status, 400);
    assert!(pale.has_code("invalid_color"));
    let saved = b
        .post(
            "/dashboard/settings",
            &[
                ("name", "Lamu Sails & Dhows"),
                ("brand_color", "#123A5C"),
                ("support_phone", "+254 712 345 678"),
                ("support_email", "help@lamu.example"),
                ("support_whatsapp", "+254 722 000 111"),
            ],
        )
        .await;
    assert_eq!(
        saved.location.as_deref(),
        Some("/dashboard/settings?saved=1"),
        "{}",
        saved.body
    );
    let id = session_for(&app, &key, 150_000, "KES", "DHOW-1").await;
    let page = app.page(&id).await;
    assert!(page.contains("Lamu Sails &amp; Dhows"), "the new name");
    assert!(page.contains("href=\"tel:+254712345678\""), "{page}");
    assert!(page.contains("href=\"https://wa.me/254722000111\""));
    assert!(page.contains("href=\"mailto:help@lamu.example\""));
    assert!(page.contains(":root{--brand:#123a5c}"));
}

#[tokio::test]
async fn a_mass_resend_waits_can_be_cancelled_and_otherwise_runs_once() {
    let app = spawn_app_with(Db::Sqlite, |c| c.dashboard.mass_action_delay_secs = 1).await;
    let mut b = signed_up(&app, "ochieng@homa.example", "Homa Bay Boats").await;
    let merchant = app
        .store
        .merchant_by_name("Homa Bay Boats")
        .await
        .unwrap()
        .unwrap();
    // An event whose delivery failed for good: an endpoint that refuses, a closed window.
    let mode = malipo::domain::Mode::Test;
    let endpoint = malipo::webhooks::create_endpoint(
        &app.store,
        &merchant.id,
        mode,
        "http://127.0.0.1:9/refuses",
        &["*".to_owned()],
        "",
        malipo::time::now_ms(),
    )
    .await
    .unwrap();
    let key = key_for(&app, &mut b).await;
    let id = session_for(&app, &key, 1_000, "KES", "BOAT-1").await;
    app.client
        .post(format!("{}/v1/checkout/sessions/{}/expire", app.addr, id))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    sqlx::query("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL WHERE endpoint_id = $1")
        .bind(endpoint.id.as_str())
        .execute(app.store.pool())
        .await
        .unwrap();

    let confirm = b.get("/dashboard/mass/resend").await;
    let count = confirm
        .body
        .split("data-count=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{}", confirm.body))
        .to_owned();
    assert_eq!(count, "1");
    let wrong = b
        .post(
            "/dashboard/mass/resend",
            &[("password", "not the password")],
        )
        .await;
    assert_eq!(wrong.status, 401, "the password is asked every time");
    let scheduled = b
        .post(
            "/dashboard/mass/resend",
            &[("password", PASSWORD), ("count", "1")],
        )
        .await;
    let status_url = scheduled.location.clone().unwrap();
    let page = b.get(&status_url).await;
    assert!(page.has_code("mass_scheduled"), "{}", page.body);
    let cancelled = b.post(&format!("{status_url}/cancel"), &[]).await;
    assert_eq!(cancelled.location.as_deref(), Some(status_url.as_str()));
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let page = b.get(&status_url).await;
    assert!(page.has_code("mass_cancelled"), "{}", page.body);
    let failed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'failed'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert!(failed >= 1, "nothing was resent");

    // Confirmed and left alone, it runs after its delay.
    b.get("/dashboard/mass/resend").await;
    let scheduled = b
        .post(
            "/dashboard/mass/resend",
            &[("password", PASSWORD), ("count", "1")],
        )
        .await;
    let status_url = scheduled.location.clone().unwrap();
    let mut done = false;
    for _ in 0..50 {
        if b.get(&status_url).await.has_code("mass_done") {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(done, "the action ran");
    let cancel_late = b.post(&format!("{status_url}/cancel"), &[]).await;
    assert_eq!(cancel_late.status, 303);
    assert!(
        b.get(&status_url).await.has_code("mass_done"),
        "too late to cancel"
    );
    let audit = b.get("/dashboard/audit").await;
    assert!(
        audit.body.contains("webhooks.mass_resend_cancelled")
            && audit.body.contains("webhooks.mass_resend_ran")
    );
}

/// Someone signs up first with another person's address (never confirmed). When the
/// owner signs up, their password replaces the squatter's, and only the owner's own
/// link, with the owner's password, confirms the account: the squatter's password never
/// signs in, and a reset confirms the address too.
#[tokio::test]
async fn a_sign_up_with_someone_elses_address_never_keeps_the_squatters_password() {
    let app = app().await;
    let owner = "achieng@kisumu.example";
    let mut eve = Browser::new(&app);
    eve.get("/dashboard/sign-up").await;
    eve.post(
        "/dashboard/sign-up",
        &[
            ("business", "Squat Ltd"),
            ("email", owner),
            ("password", "the squatter's password"),
        ],
    )
    .await;
    let squat_link = wait_mail(&app, owner, "/dashboard/verify/").await;
    // The owner signs up (the page answers as for anyone).
    let mut b = Browser::new(&app);
    b.get("/dashboard/sign-up").await;
    let page = b
        .post(
            "/dashboard/sign-up",
            &[
                ("business", "Kisumu Tours"),
                ("email", owner),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert!(page.has_code("mail_sent"));
    let mut link = String::new();
    for _ in 0..100 {
        link = mailed_link(&app, owner, "/dashboard/verify/")
            .await
            .unwrap();
        if link != squat_link {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_ne!(link, squat_link, "a new link for the new sign-up");
    assert_eq!(
        b.get(&squat_link).await.status,
        410,
        "the older link stopped working"
    );
    b.get(&link).await;
    let squatter = b
        .post(&link, &[("password", "the squatter's password")])
        .await;
    assert_eq!(
        squatter.status, 401,
        "the link wants the owner's own password"
    );
    let ok = b.post(&link, &[("password", PASSWORD)]).await;
    assert_eq!(
        ok.location.as_deref(),
        Some("/dashboard/security?welcome=1")
    );
    let mut e = Browser::new(&app);
    e.get("/dashboard/sign-in").await;
    let no = e
        .post(
            "/dashboard/sign-in",
            &[("email", owner), ("password", "the squatter's password")],
        )
        .await;
    assert_eq!(no.status, 401);
}

/// Guesses sent all at once are counted like guesses sent one by one: of 20 racing
/// sign-ins with wrong passwords, at most 5 are checked; the rest are refused unread.
#[tokio::test]
async fn racing_guesses_are_all_counted() {
    let app = app().await;
    signed_up(&app, "nafula@eldoret.example", "Eldoret Runs").await;
    let mut browsers = Vec::new();
    for _ in 0..20 {
        let mut b = Browser::new(&app);
        b.get("/dashboard/sign-in").await;
        browsers.push(b);
    }
    let answers = futures_util::future::join_all(browsers.iter_mut().map(|b| {
        b.post(
            "/dashboard/sign-in",
            &[
                ("email", "nafula@eldoret.example"),
                ("password", "a guess, not the password"),
            ],
        )
    }))
    .await;
    let checked = answers.iter().filter(|p| p.status == 401).count();
    let refused = answers.iter().filter(|p| p.status == 429).count();
    assert!(checked <= 5, "{checked} guesses were checked");
    assert_eq!(checked + refused, 20);
}

#[tokio::test]
async fn a_bulk_refund_shows_its_count_and_total_can_be_cancelled_and_refunds_each_payment_once() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.dashboard.mass_action_delay_secs = 1;
        c.sandbox_delay_percent = 5;
    })
    .await;
    let mut b = signed_up(&app, "wanjiru@coastbus.example", "Coast Bus Lines").await;
    let key = key_for(&app, &mut b).await;
    // Two seats on a bus that will not run, paid; one of them half refunded already.
    let mut paid = Vec::new();
    for seat in ["SEAT-1", "SEAT-2"] {
        let id = session_for(&app, &key, 20_000, "USD", seat).await;
        paid.push(pay_with_paypal(&app, &id).await.id.to_string());
    }
    let half: Value = app
        .client
        .post(format!("{}/v1/refunds", app.addr))
        .bearer_auth(&key)
        .header("idempotency-key", "half-of-seat-1")
        .json(&json!({"payment": paid[0], "amount": 10_000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(half["status"], "succeeded", "{half}");

    let list = b.get("/dashboard/payments?status=paid").await;
    assert!(
        list.body.contains("/dashboard/mass/refund?status=paid"),
        "{}",
        list.body
    );
    let confirm = b.get("/dashboard/mass/refund?status=paid").await;
    assert!(
        confirm
            .body
            .contains("data-count=\"2\" data-total=\"USD 300\""),
        "all that is left of each: {}",
        confirm.body
    );
    let fields = |password: &'static str, total: &'static str| {
        vec![
            ("password", password),
            ("count", "2"),
            ("total", total),
            ("status", "paid"),
        ]
    };
    let wrong = b
        .post(
            "/dashboard/mass/refund",
            &fields("not the password", "USD 300"),
        )
        .await;
    assert_eq!(wrong.status, 401, "the password is asked every time");
    let stale = b
        .post("/dashboard/mass/refund", &fields(PASSWORD, "USD 400"))
        .await;
    assert_eq!(stale.status, 409, "what was confirmed is what is refunded");
    assert!(stale.has_code("count_changed"));
    // Confirmed, then cancelled during its delay: nothing is refunded.
    let scheduled = b
        .post("/dashboard/mass/refund", &fields(PASSWORD, "USD 300"))
        .await;
    let status_url = scheduled.location.clone().unwrap();
    assert!(b.get(&status_url).await.has_code("mass_scheduled"));
    b.post(&format!("{status_url}/cancel"), &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert!(b.get(&status_url).await.has_code("mass_cancelled"));
    let refunds = async || -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM refunds")
            .fetch_one(app.store.pool())
            .await
            .unwrap()
    };
    assert_eq!(refunds().await, 1, "only the half refund made before");

    // Confirmed and left alone: each payment refunded once, in whole.
    b.get("/dashboard/mass/refund?status=paid").await;
    let scheduled = b
        .post("/dashboard/mass/refund", &fields(PASSWORD, "USD 300"))
        .await;
    let status_url = scheduled.location.clone().unwrap();
    let mut done = None;
    for _ in 0..50 {
        let page = b.get(&status_url).await;
        if page.has_code("mass_done") {
            done = Some(page.body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let done = done.expect("the bulk refund ran");
    assert!(done.contains("2 payments: 2 refunded"), "{done}");
    assert_eq!(refunds().await, 3);
    let left: Value = app
        .client
        .get(format!("{}/v1/refunds?payment={}", app.addr, paid[0]))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let amounts: Vec<i64> = left["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts.iter().sum::<i64>(), 20_000, "{left}");
    // Nothing is left to refund now.
    assert!(
        b.get("/dashboard/mass/refund?status=paid")
            .await
            .has_code("nothing_to_refund")
    );
    let audit = b.get("/dashboard/audit").await;
    for what in [
        "refunds.mass_refund_scheduled",
        "refunds.mass_refund_cancelled",
        "refunds.mass_refund_ran",
    ] {
        assert!(audit.body.contains(what), "{what}");
    }
}

#[tokio::test]
async fn the_owner_switches_the_ways_to_pay_and_new_checkouts_offer_only_those() {
    let app = app().await;
    let mut b = signed_up(&app, "baraka@tsavo.example", "Tsavo Trails").await;
    let merchant = app
        .store
        .merchant_by_name("Tsavo Trails")
        .await
        .unwrap()
        .unwrap();
    let settings = b.get("/dashboard/settings").await;
    assert!(
        settings
            .body
            .contains("data-rail=\"airtel\" data-on=\"true\""),
        "every rail the server has on, on: {}",
        settings.body
    );
    // None at all: refused, nothing written.
    let none = b.post("/dashboard/settings/rails", &[]).await;
    assert_eq!(none.status, 400);
    assert!(none.has_code("no_rails"));
    let mode = malipo::domain::Mode::Test;
    assert_eq!(
        app.store.merchant_rails(&merchant.id, mode).await.unwrap(),
        None
    );
    // M-PESA and cards only.
    let saved = b
        .post(
            "/dashboard/settings/rails",
            &[
                ("rail_mpesa", "on"),
                ("rail_card", "on"),
                ("rail_nonsense", "on"),
            ],
        )
        .await;
    assert_eq!(
        saved.location.as_deref(),
        Some("/dashboard/settings?saved=rails")
    );
    assert_eq!(
        app.store.merchant_rails(&merchant.id, mode).await.unwrap(),
        Some(vec![
            malipo::connectors::RailId::Mpesa,
            malipo::connectors::RailId::Card
        ])
    );
    let key = key_for(&app, &mut b).await;
    let id = session_for(&app, &key, 150_000, "KES", "TRAIL-3").await;
    let page = app.page(&id).await;
    assert!(!page.contains(r#"name="rail" value="airtel""#), "{page}");
    let audit = b.get("/dashboard/audit").await;
    assert!(audit.body.contains("rails.changed"));
    // Every rail again: stored as "every rail", so one set up later is offered too.
    let all: Vec<(String, String)> = malipo::connectors::RailId::ALL
        .iter()
        .map(|r| (format!("rail_{}", r.as_str()), "on".to_owned()))
        .collect();
    let fields: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    b.post("/dashboard/settings/rails", &fields).await;
    assert_eq!(
        app.store.merchant_rails(&merchant.id, mode).await.unwrap(),
        None
    );
}

/// A multipart form body (`name`, optional `(filename, bytes)` or text) and its type.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "malipo-test-boundary-7d9f";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

#[tokio::test]
async fn a_logo_is_uploaded_checked_served_from_here_and_shown_on_the_hosted_page() {
    let app = app().await;
    let mut b = signed_up(&app, "nia@lamu.example", "Lamu Dhow Trips").await;
    b.get("/dashboard/settings").await;
    let upload = async |b: &mut Browser<'_>, parts: &[(&str, Option<&str>, &[u8])]| {
        let (kind, body) = multipart(parts);
        let res = app
            .client
            .post(format!("{}/dashboard/settings/logo", app.addr))
            .header("cookie", b.cookie_header())
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .unwrap();
        b.take(res).await
    };
    let csrf = b.csrf.clone();
    // An SVG (it can carry script), and a PNG too large, are refused.
    let svg = upload(
        &mut b,
        &[
            ("csrf", None, csrf.as_bytes()),
            (
                "logo",
                Some("logo.svg"),
                b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
            ),
        ],
    )
    .await;
    assert_eq!(svg.status, 400);
    assert!(svg.has_code("invalid_logo"), "{}", svg.body);
    let big = [PNG, &vec![0u8; 20 * 1024]].concat();
    let too_big = upload(
        &mut b,
        &[
            ("csrf", None, csrf.as_bytes()),
            ("logo", Some("big.png"), &big),
        ],
    )
    .await;
    assert_eq!(too_big.status, 400);
    // Without the form's token: refused.
    let forged = upload(&mut b, &[("logo", Some("logo.png"), PNG)]).await;
    assert_eq!(forged.status, 403);
    let saved = upload(
        &mut b,
        &[
            ("csrf", None, csrf.as_bytes()),
            ("logo", Some("logo.png"), PNG),
        ],
    )
    .await;
    assert_eq!(
        saved.location.as_deref(),
        Some("/dashboard/settings?saved=logo")
    );
    let settings = b.get("/dashboard/settings").await;
    let digest = settings
        .body
        .split("data-logo=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{}", settings.body))
        .to_owned();
    let served = app
        .client
        .get(format!("{}/logos/{digest}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        served.headers()["cache-control"],
        "public, max-age=31536000, immutable",
        "a 2G shopper downloads it once"
    );
    assert_eq!(served.bytes().await.unwrap().as_ref(), PNG);
    let key = key_for(&app, &mut b).await;
    let id = session_for(&app, &key, 150_000, "KES", "DHOW-1").await;
    assert!(
        app.page(&id)
            .await
            .contains(&format!("src=\"/logos/{digest}\""))
    );
    // Removed: gone from the page and from its URL.
    let csrf = b.csrf.clone();
    upload(
        &mut b,
        &[("csrf", None, csrf.as_bytes()), ("remove", None, b"1")],
    )
    .await;
    assert!(!app.page(&id).await.contains("/logos/"));
    let gone = app
        .client
        .get(format!("{}/logos/{digest}", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn a_withdrawn_invitation_or_one_from_someone_removed_since_lets_nobody_in() {
    let app = app().await;
    let mut owner = signed_up(&app, "kamau@naivasha.example", "Naivasha Boats").await;
    owner.get("/dashboard/team").await;
    owner
        .post(
            "/dashboard/team/invite",
            &[("email", "zawadi@naivasha.example"), ("role", "viewer")],
        )
        .await;
    let withdrawn_link = wait_mail(&app, "zawadi@naivasha.example", "/dashboard/invite/").await;
    let team = owner.get("/dashboard/team").await;
    let handle = team
        .body
        .split("name=\"invite\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{}", team.body))
        .to_owned();
    let done = owner
        .post("/dashboard/team/invite/cancel", &[("invite", &handle)])
        .await;
    assert_eq!(
        done.location.as_deref(),
        Some("/dashboard/team?done=withdrawn")
    );
    assert!(!owner.get("/dashboard/team").await.body.contains("zawadi@"));
    let mut zawadi = Browser::new(&app);
    assert_eq!(zawadi.get(&withdrawn_link).await.status, 410, "withdrawn");

    // An admin invites someone, and is removed before the link is used.
    owner
        .post(
            "/dashboard/team/invite",
            &[("email", "otieno@naivasha.example"), ("role", "admin")],
        )
        .await;
    let link = wait_mail(&app, "otieno@naivasha.example", "/dashboard/invite/").await;
    let mut admin = Browser::new(&app);
    admin.get(&link).await;
    admin
        .post(&link, &[("password", "an admin's long password")])
        .await;
    admin.get("/dashboard/team").await;
    let sent = admin
        .post(
            "/dashboard/team/invite",
            &[("email", "chebet@naivasha.example"), ("role", "developer")],
        )
        .await;
    assert_eq!(
        sent.location.as_deref(),
        Some("/dashboard/team?done=invited"),
        "{}",
        sent.body
    );
    let chebet_link = wait_mail(&app, "chebet@naivasha.example", "/dashboard/invite/").await;
    let team = owner.get("/dashboard/team").await;
    let admin_id = team
        .body
        .split("/dashboard/team/")
        .filter_map(|s| s.split('/').next())
        .find(|s| s.starts_with("usr_"))
        .unwrap()
        .to_owned();
    owner
        .post(&format!("/dashboard/team/{admin_id}/remove"), &[])
        .await;
    assert_eq!(
        admin.get("/dashboard/payments").await.location.as_deref(),
        Some("/dashboard/sign-in"),
        "the admin is gone"
    );
    let mut chebet = Browser::new(&app);
    chebet.get(&chebet_link).await;
    let refused = chebet
        .post(&chebet_link, &[("password", "a developer's long password")])
        .await;
    assert_ne!(refused.status, 303, "{}", refused.body);
    assert!(
        app.store
            .user_by_email("chebet@naivasha.example")
            .await
            .unwrap()
            .is_none(),
        "nobody was let in"
    );
}

#[tokio::test]
async fn a_new_merchant_opens_a_test_checkout_pays_it_with_m_pesa_and_can_refund_it_whole() {
    let app = app().await;
    let mut b = signed_up(&app, "amani@watamu.example", "Watamu Divers").await;
    let list = b.get("/dashboard/payments").await;
    assert!(list.body.contains("Open a test checkout"), "{}", list.body);
    let opened = b.post("/dashboard/payments/try", &[]).await;
    let page = opened
        .location
        .clone()
        .unwrap_or_else(|| panic!("{}", opened.body));
    let id = page.strip_prefix("/pay/").unwrap().to_owned();
    assert!(app.page(&id).await.contains("KES 1,500"));
    // Paid as a shopper would, on the sandbox phone.
    let res = app.post_pay_form(&id, "", &[("phone", "0708374149")]).await;
    assert_eq!(res.status(), 303);
    crate::helpers::approve_first(&app.client, &app.addr, "254708374149").await;
    let paid = crate::helpers::wait_for("the test checkout to be paid", 20, async || {
        let a = latest(&app, &id).await;
        (a.status == malipo::store::AttemptStatus::Succeeded).then_some(a)
    })
    .await;
    let list = b.get("/dashboard/payments?q=149").await;
    assert!(
        list.body.contains("TRY-") && list.body.contains("data-status=\"paid\""),
        "{}",
        list.body
    );
    // M-PESA returns a payment whole: one button for all of it.
    let detail = b.get(&format!("/dashboard/payments/{id}")).await;
    assert!(detail.has_code("whole_refund_only"), "{}", detail.body);
    assert!(
        detail.body.contains("Refund all KES 1,500"),
        "{}",
        detail.body
    );
    let confirm = b
        .get(&format!(
            "/dashboard/payments/{id}/refund?payment={}&amount=",
            paid.id
        ))
        .await;
    assert!(
        confirm.body.contains("Refund KES 1,500"),
        "{}",
        confirm.body
    );
}

#[tokio::test]
async fn a_bulk_refund_whose_runner_died_is_taken_up_again_and_refunds_nothing_twice() {
    let app = app().await;
    let mut b = signed_up(&app, "jabali@kilifi.example", "Kilifi Kayaks").await;
    let key = key_for(&app, &mut b).await;
    let merchant = app
        .store
        .merchant_by_name("Kilifi Kayaks")
        .await
        .unwrap()
        .unwrap();
    let mut paid = Vec::new();
    for seat in ["KAYAK-1", "KAYAK-2"] {
        let id = session_for(&app, &key, 20_000, "USD", seat).await;
        paid.push(pay_with_paypal(&app, &id).await.id.to_string());
    }
    // A bulk refund that refunded the first payment, then its server died (the row
    // stays `running`, its runner silent for ten minutes).
    let action = "ma_diedmidwaydiedmidwayxx";
    let long_ago = malipo::time::now_ms() - 600_000;
    app.store
        .insert_mass_action(
            action,
            &merchant.id,
            malipo::domain::Mode::Test,
            "refund",
            &paid,
            "jabali@kilifi.example",
            long_ago,
            long_ago,
        )
        .await
        .unwrap();
    let first: Value = app
        .client
        .post(format!("{}/v1/refunds", app.addr))
        .bearer_auth(&key)
        .json(&json!({"payment": paid[0]}))
        .header("idempotency-key", action)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["status"], "succeeded", "{first}");
    sqlx::query("UPDATE mass_actions SET status = 'running', claimed_at = $2 WHERE id = $1")
        .bind(action)
        .bind(long_ago)
        .execute(app.store.pool())
        .await
        .unwrap();
    let done = crate::helpers::wait_for("the bulk refund to be taken up again", 15, async || {
        app.store
            .mass_action(action)
            .await
            .unwrap()
            .filter(|a| a.status == "done")
    })
    .await;
    assert_eq!(
        done.outcome.as_deref(),
        Some("2 payments: 2 refunded, 0 pending, 0 refused, 0 skipped")
    );
    let refunds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refunds")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(
        refunds, 2,
        "one refund per payment, the first not made twice"
    );
}

/// Live credentials the sandbox Daraja is set to answer to: a lodge's own paybill app, as
/// Safaricom would issue them (no sandbox value, so they pass as live ones).
const LODGE_KEY: &str = "ck-lodge-live-7Q2W";
const LODGE_SECRET: &str = "cs-lodge-live-secret-9d8f";
const LODGE_SHORTCODE: &str = "600100";
const LODGE_PASSKEY: &str = "lodge-live-passkey-5e1c";

#[tokio::test]
async fn an_owner_saves_live_m_pesa_credentials_sealed_never_shown_and_live_payments_use_them() {
    use malipo::{
        connectors::RailId,
        domain::{Mode, Money, money::Currency},
    };
    use secrecy::SecretString;
    // Safaricom, standing in: this server's sandbox Daraja, which knows only the lodge's
    // own app and paybill. Live M-PESA is open here (its live base URL is that sandbox:
    // a test's shortcut past the configuration's https check) with no credentials of the
    // server's own, so only the merchant's can reach it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let daraja = format!("http://127.0.0.1:{port}/sandbox/daraja");
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.sandbox_delay_percent = 5;
        c.rails.mpesa.consumer_key = LODGE_KEY.into();
        c.rails.mpesa.consumer_secret = SecretString::from(LODGE_SECRET);
        c.rails.mpesa.shortcode = LODGE_SHORTCODE.into();
        c.rails.mpesa.passkey = SecretString::from(LODGE_PASSKEY);
        c.rails_live.mpesa.base_url = daraja.clone();
        // Live mode is on: the server is given its master key.
        c.master_key = SecretString::from(crate::helpers::TEST_MASTER_KEY);
    })
    .await;
    let mut b = signed_up(&app, "wanjiru@lodge.example", "Lodge Live").await;
    let merchant = app
        .store
        .merchant_by_name("Lodge Live")
        .await
        .unwrap()
        .unwrap();
    let path = "/dashboard/settings/credentials";
    let page = b.get(path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"data-credentials="mpesa""#));
    assert!(page.has_code("two_factor_required"));
    let lodge = [
        ("consumer_key", LODGE_KEY),
        ("consumer_secret", LODGE_SECRET),
        ("shortcode", LODGE_SHORTCODE),
        ("passkey", LODGE_PASSKEY),
    ];
    // Not without a second factor: a stolen password must not redirect live money.
    let refused = b.post(&format!("{path}/mpesa"), &lodge).await;
    assert_eq!(refused.status, 403);
    assert!(refused.has_code("two_factor_required"));
    enable_two_factor(&mut b).await;
    b.get(path).await;

    // Live M-PESA is off for this merchant: nothing serves it yet.
    let session = async || {
        app.checkout
            .create(crate::helpers::open_session(
                &merchant.id,
                Mode::Live,
                Money::new(250_000, Currency::Kes).unwrap(),
            ))
            .await
            .unwrap()
            .id
    };
    let off = session().await;
    let refused = app
        .payments
        .start(&off, RailId::Mpesa, "0712345678", false)
        .await;
    assert!(
        matches!(refused, Err(malipo::payments::PayError::RailNotConfigured)),
        "{refused:?}"
    );

    // The sandbox's public values are no live credentials: refused, nothing kept.
    let sandbox = b
        .post(
            &format!("{path}/mpesa"),
            &[
                ("consumer_key", "malipo-sandbox-key"),
                ("consumer_secret", "malipo-sandbox-secret"),
                ("shortcode", "174379"),
                ("passkey", malipo::config::SANDBOX_PASSKEY),
            ],
        )
        .await;
    assert_eq!(sandbox.status, 400, "{}", sandbox.body);
    assert!(sandbox.has_code("invalid_credentials"));
    // A field the form does not have (where requests go is this server's to say).
    let steer = b
        .post(
            &format!("{path}/mpesa"),
            &[("base_url", "http://127.0.0.1:9/"), ("consumer_key", "x")],
        )
        .await;
    assert_eq!(steer.status, 400);
    assert!(
        app.store
            .rail_credentials(&merchant.id)
            .await
            .unwrap()
            .is_empty()
    );

    // The lodge's own: saved, sealed, summarised, never shown again.
    let saved = b.post(&format!("{path}/mpesa"), &lodge).await;
    assert_eq!(
        saved.location.as_deref(),
        Some("/dashboard/settings/credentials?saved=mpesa"),
        "{}",
        saved.body
    );
    let page = b.get(saved.location.as_deref().unwrap()).await;
    assert!(page.body.contains(r#"data-status="own""#), "{}", page.body);
    assert!(page.body.contains("shortcode: 600100") && page.body.contains("consumer_key: …7Q2W"));
    for secret in [LODGE_SECRET, LODGE_PASSKEY, LODGE_KEY] {
        assert!(!page.body.contains(secret), "{secret} shown again");
    }
    let stored: String = sqlx::query_scalar("SELECT sealed FROM merchant_rail_credentials")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("sealed:v1:"));
    for secret in [LODGE_SECRET, LODGE_PASSKEY, LODGE_KEY, LODGE_SHORTCODE] {
        assert!(!stored.contains(secret));
    }
    let audit = b.get("/dashboard/audit").await;
    assert!(audit.body.contains("credentials.saved"));
    assert!(!audit.body.contains(LODGE_SECRET) && !audit.body.contains(LODGE_PASSKEY));

    // A live payment goes to the lodge's own paybill (the operator knows no other), the
    // shopper approves it on the handset, and the callback settles it here.
    let id = session().await;
    let res = app
        .post_pay_form(id.as_str(), "", &[("phone", "0712345678")])
        .await;
    assert!(res.status().is_redirection(), "{}", res.status());
    // Not while it is open: it is asked about with the credentials it was made with.
    let busy = b.post(&format!("{path}/mpesa/remove"), &[]).await;
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert!(busy.has_code("payments_open"));
    assert_eq!(
        app.store
            .rail_credentials(&merchant.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let receipt = crate::helpers::approve_first(&app.client, &app.addr, "254712345678").await;
    let attempt = app.store.latest_attempt(&id).await.unwrap().unwrap();
    let done = crate::helpers::settled_attempt(&app.store, &attempt.id, 15).await;
    assert_eq!(done.status, malipo::store::AttemptStatus::Succeeded);
    assert_eq!(done.operator_receipt.as_deref(), Some(receipt.as_str()));

    // They are this merchant's alone: another's live checkout cannot use them.
    let other = malipo::merchants::create(&app.store, "Another Lodge")
        .await
        .unwrap();
    let theirs = app
        .checkout
        .create(crate::helpers::open_session(
            &other.merchant.id,
            Mode::Live,
            Money::new(250_000, Currency::Kes).unwrap(),
        ))
        .await
        .unwrap();
    let refused = app
        .payments
        .start(&theirs.id, RailId::Mpesa, "0712345679", false)
        .await;
    assert!(matches!(
        refused,
        Err(malipo::payments::PayError::RailNotConfigured)
    ));

    // Another instance on this database builds the same connector from what is stored.
    let mut config = malipo::config::Config::load_from(None, |_| None).unwrap();
    config.rails_live.mpesa.base_url = daraja.clone();
    let other = malipo::connectors::Registry::new();
    let mut loaded = malipo::credentials::Loaded::default();
    assert_eq!(
        loaded.refresh(&app.store, &config, &other).await.unwrap(),
        1
    );
    assert!(other.own(&merchant.id, RailId::Mpesa).is_some());
    assert_eq!(
        loaded.refresh(&app.store, &config, &other).await.unwrap(),
        0
    );

    // Removed: forgotten, and live M-PESA is off again for this merchant.
    let removed = b.post(&format!("{path}/mpesa/remove"), &[]).await;
    assert_eq!(
        removed.location.as_deref(),
        Some("/dashboard/settings/credentials?removed=mpesa")
    );
    assert!(
        app.store
            .rail_credentials(&merchant.id)
            .await
            .unwrap()
            .is_empty()
    );
    let refused = app
        .payments
        .start(&session().await, RailId::Mpesa, "0712345678", false)
        .await;
    assert!(matches!(
        refused,
        Err(malipo::payments::PayError::RailNotConfigured)
    ));
    assert_eq!(
        loaded.refresh(&app.store, &config, &other).await.unwrap(),
        1
    );
    assert!(other.own(&merchant.id, RailId::Mpesa).is_none());
}
