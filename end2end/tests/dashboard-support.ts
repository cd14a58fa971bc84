import { createHmac } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, Page } from "@playwright/test";

export const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";
export const PASSWORD = "correct horse battery staple";

/** A fresh address per test and project (the suite runs tests in parallel). */
export function address(who: string): string {
  return `${who}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}@e2e.example`;
}

/** Quoted-printable soft breaks and escapes undone. */
function decodeQp(text: string): string {
  return text
    .replace(/=\r?\n/g, "")
    .replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

/** Every mail aiosmtpd received for `to` (bodies decoded), from its Maildir. */
export function mailsTo(to: string): string[] {
  const dir = process.env.MALIPO_TEST_MAILDIR;
  if (!dir) throw new Error("MALIPO_TEST_MAILDIR is not set: run the suite through scripts/test");
  let names: string[] = [];
  try {
    names = readdirSync(join(dir, "new"));
  } catch {
    return [];
  }
  return names
    .map((n) => readFileSync(join(dir, "new", n), "utf8"))
    .filter((m) => m.split(/\r?\n/).some((l) => l.toLowerCase() === `to: ${to}`.toLowerCase()))
    .map(decodeQp);
}

/** The path of the newest link to `prefix` mailed to `to` (waits for the mail). */
export async function mailedLink(to: string, prefix: string): Promise<string> {
  let link = "";
  await expect
    .poll(
      () => {
        for (const m of mailsTo(to)) {
          const at = m.indexOf(prefix);
          if (at >= 0) link = m.slice(at).split(/\s/)[0];
        }
        return link;
      },
      { timeout: 15_000, message: `a mail to ${to} with a ${prefix} link` },
    )
    .not.toBe("");
  return link;
}

/** RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s) for a base32 secret, `ahead` steps on. */
export function totp(secret: string, ahead = 0): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/\s/g, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const bytes = Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  const step = Math.floor(Date.now() / 1000 / 30) + ahead;
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", bytes).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, "0");
}

/** Signs up through the pages and confirms the address with the mailed link. */
export async function signUp(page: Page, email: string, business: string): Promise<void> {
  await page.goto("/");
  await page.getByRole("link", { name: "Create an account" }).click();
  await page.getByLabel("Business name").fill(business);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("heading", { name: "Check your mail" })).toBeVisible();
  const link = await mailedLink(email, "/dashboard/verify/");
  await page.goto(link);
  await page.getByLabel("The password you chose when signing up").fill(PASSWORD);
  await page.getByRole("button", { name: "Confirm my address" }).click();
  await expect(page.getByRole("heading", { name: "Security" })).toBeVisible();
}

/** Signs in with email and password (and a TOTP code when `secret` is given). */
export async function signIn(page: Page, email: string, secret?: string): Promise<void> {
  await page.goto("/dashboard/sign-in");
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  if (secret) {
    await expect(page.getByRole("heading", { name: "Two-factor sign-in" })).toBeVisible();
    await page.getByLabel("Code", { exact: true }).fill(totp(secret, 1));
    await page.getByRole("button", { name: "Continue" }).click();
  }
  await expect(page.getByRole("heading", { name: "Payments" })).toBeVisible();
}

/** Makes a secret key on the Developers page: the key, shown once. */
export async function createKey(page: Page): Promise<string> {
  await page.getByRole("link", { name: "Developers" }).click();
  await page.getByRole("button", { name: "Create a secret key" }).click();
  const key = await page.locator("pre[data-secret]").getAttribute("data-secret");
  expect(key).toMatch(/^sk_test_/);
  return key!;
}

/** A session of the key's merchant (USD 200 unless told), with the customer's phone number. */
export async function createSession(
  key: string,
  reference: string,
  phone: string,
  amount = 20000,
  currency = "USD",
): Promise<string> {
  const res = await fetch(`${base}/v1/checkout/sessions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify({
      amount,
      currency,
      reference,
      description: "Balloon safari over the Mara",
      success_url: "https://lodge.example/paid",
      cancel_url: "https://lodge.example/cancelled",
      customer: { phone },
    }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as any).id;
}

/** Pays a session with the sandbox PayPal's test buyer, as the shopper would. */
export async function payWithPaypal(page: Page, sessionId: string): Promise<void> {
  await page.goto(`/pay/${sessionId}`);
  await page.getByRole("button", { name: /^Pay with PayPal/ }).click();
  await page.getByLabel("Email").fill("buyer@example.com");
  await page.getByLabel("Password").fill("sandbox-buyer");
  await page.getByRole("button", { name: "Approve and pay" }).click();
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
}

/** The HMAC-SHA256 `v1` a Malipo-Signature header must carry for `body`. */
export function signatureOk(header: string, secret: string, body: string): boolean {
  const parts = Object.fromEntries(header.split(",").map((p) => p.split("=") as [string, string]));
  const want = createHmac("sha256", secret).update(`${parts.t}.${body}`).digest("hex");
  return header.split(",").some((p) => p === `v1=${want}`);
}
