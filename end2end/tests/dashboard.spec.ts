import { expect, test } from "@playwright/test";
import {
  PASSWORD,
  address,
  base,
  createKey,
  createSession,
  mailedLink,
  mailsTo,
  payWithPaypal,
  signIn,
  signUp,
  signatureOk,
  totp,
} from "./dashboard-support";
import { approveOnHandset } from "./support";

// The merchant's dashboard, as a new merchant uses it: plain forms, so every flow runs
// with JavaScript on and off. Mail goes over real SMTP to aiosmtpd; the tests read it
// from its Maildir.

const hooks = process.env.MALIPO_E2E_HOOK_URL ?? "";

test("sign up, confirm by mail, turn on two-factor, sign out, sign in with a code", async ({ page }) => {
  const email = address("amina");
  await signUp(page, email, "Mara Balloon Co");
  await page.getByRole("button", { name: "Set up two-factor sign-in" }).click();
  await expect(page.locator(".qr svg")).toBeVisible();
  const secret = (await page.locator("code[data-secret]").getAttribute("data-secret"))!;
  await page.getByLabel("Code", { exact: true }).fill(totp(secret));
  await page.getByRole("button", { name: "Turn on two-factor sign-in" }).click();
  await expect(page.getByRole("heading", { name: "Two-factor sign-in is on" })).toBeVisible();
  await expect(page.locator("[data-recovery-codes] li")).toHaveCount(10);
  await page.getByRole("link", { name: "I have saved them" }).click();
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(page.getByText("You are signed out.")).toBeVisible();
  await signIn(page, email, secret);
  await expect(page.locator(".merchant")).toHaveText("Mara Balloon Co");
});

test("a key, a payment found by the phone's last digits, half refunded, on the timeline and at the webhook receiver", async ({ page }) => {
  const email = address("baraka");
  await signUp(page, email, "Tsavo Balloons");
  // A webhook endpoint: its signing secret is shown once.
  await page.getByRole("link", { name: "Developers" }).click();
  const path = `/hooks/${Date.now()}${Math.random().toString(36).slice(2)}`;
  await page.getByLabel("Endpoint URL").fill(`${hooks}${path}`);
  await page.getByRole("button", { name: "Add the endpoint" }).click();
  const hookSecret = (await page.locator("pre[data-secret]").getAttribute("data-secret"))!;
  expect(hookSecret).toMatch(/^whsec_/);
  const key = await createKey(page);
  // A UGX session paid with MTN MoMo from a phone of the shopper's own, on the handset.
  const digits = String(Math.floor(Math.random() * 900_000) + 100_000);
  const payer = `256772${digits}`;
  const reference = `TSV-${digits}`;
  const sessionId = await createSession(key, reference, `+${payer}`, 75000, "UGX");
  await page.goto(`/pay/${sessionId}`);
  await page.getByLabel("MTN MoMo phone number").fill(`0772${digits}`);
  await page.getByRole("button", { name: /^Pay UGX/ }).click();
  await approveOnHandset(payer, reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });

  // Found by the last four digits of the number that paid.
  await page.goto("/dashboard/payments");
  await page.getByLabel("Search").fill(digits.slice(-4));
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("link", { name: reference }).click();
  await expect(page.getByRole("heading", { name: `${reference} · UGX 75,000` })).toBeVisible();
  await page.getByLabel(/Refund amount/).fill("37500");
  await page.getByRole("button", { name: "Refund…" }).click();
  await expect(page.getByRole("heading", { name: "Confirm the refund" })).toBeVisible();
  await expect(page.locator("dl.facts")).toContainText("MTN MoMo");
  await expect(page.locator("dl.facts")).toContainText(digits.slice(-3));
  await page.getByRole("button", { name: "Refund UGX 37,500" }).click();
  await expect(page.getByText(/Refund re_\w+ sent/)).toBeVisible();
  const refunds = page.locator("tr[data-refund]");
  await expect(refunds).toHaveCount(1);
  await expect(refunds).toContainText("UGX 37,500");
  // MTN confirms a refund by callback, moments later.
  await expect
    .poll(
      async () => {
        await page.reload();
        return refunds.textContent();
      },
      { timeout: 15_000 },
    )
    .toContain("succeeded");
  await expect(page.locator(".timeline")).toContainText("refund");
  // The hosted page says so too.
  await page.goto(`/pay/${sessionId}`);
  await expect(page.locator("[data-refunded=true]")).toContainText("UGX 37,500 refunded");
  // The merchant's receiver got refund.succeeded, signed with the endpoint's secret.
  await expect
    .poll(
      async () => {
        const all: any[] = await (await fetch(`${hooks}/deliveries`)).json();
        return all.filter(
          (d) => d.path === path && JSON.parse(d.body).type === "refund.succeeded" && signatureOk(d.signature, hookSecret, d.body),
        ).length;
      },
      { timeout: 15_000 },
    )
    .toBe(1);
  // And the dashboard shows that delivery.
  await page.goto(`/dashboard/payments/${sessionId}`);
  await expect(page.locator("section[data-event]", { hasText: "refund.succeeded" })).toContainText("succeeded");
});

test("a double-clicked Refund makes one refund", async ({ page }) => {
  await signUp(page, address("halima"), "Zanzibar Dhows");
  const key = await createKey(page);
  const reference = `DBL-${Date.now() % 1000000}`;
  const sessionId = await createSession(key, reference, "+255712000111");
  await payWithPaypal(page, sessionId);
  await page.goto(`/dashboard/payments/${sessionId}`);
  await page.getByRole("button", { name: "Refund…" }).click();
  const button = page.getByRole("button", { name: "Refund USD 200" });
  // The same form, as a second tap would send it again.
  const form = page.locator("form", { has: button });
  const fields: Record<string, string> = {};
  for (const input of await form.locator("input[type=hidden]").all()) {
    fields[(await input.getAttribute("name"))!] = (await input.getAttribute("value"))!;
  }
  if (test.info().project.name === "js") {
    await button.dblclick();
  } else {
    await button.click();
  }
  await expect(page.getByText(/Refund re_\w+ sent/)).toBeVisible();
  const again = await page.request.post(`/dashboard/payments/${sessionId}/refund`, { form: fields, maxRedirects: 0 });
  expect(again.status()).toBe(303);
  expect(again.headers()["location"]).toBe(new URL(page.url()).pathname + new URL(page.url()).search);
  await page.reload();
  await expect(page.locator("tr[data-refund]")).toHaveCount(1);
  // Sent once more (a browser's resubmit): still the same one refund.
  const readRefunds = async () => {
    const payment = (await (await fetch(`${base}/v1/checkout/sessions/${sessionId}`, { headers: { authorization: `Bearer ${key}` } })).json()) as any;
    const list = (await (await fetch(`${base}/v1/refunds?payment=${payment.payment.id}`, { headers: { authorization: `Bearer ${key}` } })).json()) as any;
    return list.data.length;
  };
  expect(await readRefunds()).toBe(1);
});

test("a mass resend can be cancelled during its delay", async ({ page }) => {
  await signUp(page, address("juma"), "Kilifi Boats");
  // An endpoint that is down: its deliveries fail for good (the suite's retry window is
  // seconds, not days).
  await page.getByRole("link", { name: "Developers" }).click();
  await page.getByLabel("Endpoint URL").fill(`${hooks}/fail/${Date.now()}`);
  await page.getByRole("button", { name: "Add the endpoint" }).click();
  const key = await createKey(page);
  const sessionId = await createSession(key, `MASS-${Date.now() % 1000000}`, "+254712000222");
  await fetch(`${base}/v1/checkout/sessions/${sessionId}/expire`, { method: "POST", headers: { authorization: `Bearer ${key}` } });
  await page.goto("/dashboard/developers");
  await expect
    .poll(
      async () => {
        await page.goto("/dashboard/mass/resend");
        return await page.locator("[data-count]").count();
      },
      { timeout: 30_000, message: "a delivery failed for good" },
    )
    .toBe(1);
  await page.getByLabel("Your password").fill(PASSWORD);
  await page.getByRole("button", { name: /^Resend \d+ events$/ }).click();
  await expect(page.locator("[data-code=mass_scheduled]")).toBeVisible();
  await page.getByRole("button", { name: "Cancel" }).click();
  await expect(page.locator("[data-code=mass_cancelled]")).toContainText("nothing was sent");
  await page.goto("/dashboard/audit");
  await expect(page.locator("table")).toContainText("webhooks.mass_resend_cancelled");
});

test("7pay: a reset link only ever reaches the account's own address", async ({ page, browser }) => {
  const victim = address("wanjiru");
  const attacker = address("eve");
  await signUp(page, victim, "Naivasha Camp");
  const eve = await (await browser.newContext()).newPage();
  await eve.goto("/dashboard/forgot");
  // The form asks for one thing: the address.
  await expect(eve.locator("form input:not([type=hidden])")).toHaveCount(1);
  await eve.getByLabel("Email").fill(victim);
  await eve.getByRole("button", { name: "Send the reset link" }).click();
  await expect(eve.getByRole("heading", { name: "Check your mail" })).toBeVisible();
  // Extra fields naming another mailbox, sent as the form would be: ignored or refused.
  await eve.goto("/dashboard/forgot");
  const csrf = await eve.locator("input[name=csrf]").getAttribute("value");
  for (const form of [
    { csrf, email: victim, send_to: attacker, phone: "+254712345678", date_of_birth: "1990-04-01" },
    { csrf, email: `${victim},${attacker}` },
    { csrf, email: `${victim}\r\nBcc: ${attacker}` },
    { csrf, email: `Wanjiru <${attacker}>` },
  ]) {
    const res = await eve.request.post("/dashboard/forgot", { form: form as any });
    expect([200, 400]).toContain(res.status());
  }
  await expect.poll(() => mailsTo(victim).filter((m) => m.includes("/dashboard/reset/")).length).toBeGreaterThan(0);
  expect(mailsTo(attacker)).toHaveLength(0);
  // The victim's password still works.
  const again = await (await browser.newContext()).newPage();
  await signIn(again, victim);
});

test("a form without its token, or from another site, is refused", async ({ page }) => {
  await page.goto("/dashboard/sign-in");
  const csrf = await page.locator("input[name=csrf]").getAttribute("value");
  const missing = await page.request.post("/dashboard/sign-in", { form: { email: "a@e2e.example", password: "x" } });
  expect(missing.status()).toBe(403);
  expect(await missing.text()).toContain('data-code="csrf_failed"');
  const crossSite = await page.request.post("/dashboard/sign-in", {
    form: { csrf: csrf!, email: "a@e2e.example", password: "x" },
    headers: { origin: "https://evil.example" },
  });
  expect(crossSite.status()).toBe(403);
});

test("repeated bad passwords are throttled with a clear message", async ({ page }) => {
  const email = address("otieno");
  await signUp(page, email, "Kisumu Boats");
  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  for (let i = 0; i < 5; i++) {
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("not my password at all");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.locator("[data-code=wrong_password]")).toBeVisible();
  }
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.locator("[data-code=too_many_attempts]")).toContainText("Try again in 15 minutes");
});

test("a viewer cannot refund", async ({ page, browser }) => {
  await signUp(page, address("mwangi"), "Amboseli Lodge");
  const key = await createKey(page);
  const reference = `VIEW-${Date.now() % 1000000}`;
  const sessionId = await createSession(key, reference, "+254712000333");
  await payWithPaypal(page, sessionId);
  const viewerEmail = address("wambui");
  await page.goto("/dashboard/team");
  await page.getByLabel("Email").fill(viewerEmail);
  await page.getByLabel("Role").selectOption("viewer");
  await page.getByRole("button", { name: "Send the invitation" }).click();
  await expect(page.getByText("Invitation sent.")).toBeVisible();

  const viewer = await (await browser.newContext()).newPage();
  await viewer.goto(await mailedLink(viewerEmail, "/dashboard/invite/"));
  await expect(viewer.getByRole("heading", { name: "Join Amboseli Lodge" })).toBeVisible();
  await viewer.getByLabel("Choose a password").fill("a viewer's long password");
  await viewer.getByRole("button", { name: "Accept the invitation" }).click();
  await expect(viewer.getByRole("link", { name: reference })).toBeVisible();
  await viewer.getByRole("link", { name: reference }).click();
  await expect(viewer.locator("[data-code=forbidden]")).toContainText("Your role cannot refund");
  await expect(viewer.getByRole("button", { name: "Refund…" })).toHaveCount(0);
  const res = await viewer.request.get(`/dashboard/payments/${sessionId}/refund?payment=pa_x`);
  expect(res.status()).toBe(403);
});
