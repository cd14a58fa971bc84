import { expect, Page, test } from "@playwright/test";
import { readSession, seedSession, Seeded } from "./support";

const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";

// Paying with PayPal through the sandbox PayPal, on its own origin: a plain form and
// Malipo's 303 to PayPal's approval page, so it works the same with JavaScript off.
// PayPal takes no KES: the KES 1,500 session is paid in dollars at the quote shown.

/** Presses the PayPal button and logs in on PayPal's page as `email`. */
async function toPaypal(page: Page, s: Seeded, email: string) {
  await page.goto(s.path);
  await page.getByRole("button", { name: "Pay with PayPal · USD 11.63" }).click();
  await expect(page.getByRole("heading", { name: "PayPal (sandbox)" })).toBeVisible();
  expect(page.url().startsWith(base)).toBe(false);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("sandbox-buyer");
}

test("approved on PayPal turns the page green, paid in dollars at the quote", async ({ page }) => {
  const s = seedSession();
  await toPaypal(page, s, "buyer@example.com");
  await page.getByRole("button", { name: "Approve and pay" }).click();
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  expect(page.url().startsWith(base)).toBe(true);
  await expect(page.locator("[data-live=paid]")).toContainText("PayPal receipt");
  const session = await readSession(s);
  expect(session.payment_status).toBe("paid");
  expect(session.payment).toMatchObject({ rail: "paypal", amount: 1163, currency: "USD" });
  expect(session.payment.quote).toMatchObject({
    amount: 150000,
    currency: "KES",
    converted_amount: 1163,
    converted_currency: "USD",
    rate: "129.00",
  });
});

test("cancelled on PayPal is back on the page, nothing charged, M-PESA still there", async ({ page }) => {
  const s = seedSession();
  await toPaypal(page, s, "buyer@example.com");
  await page.getByRole("button", { name: /^Cancel and return to/ }).click();
  await expect(page.locator("[data-live=failed]")).toContainText(
    "You cancelled the PayPal payment. Nothing was charged.",
    { timeout: 15_000 },
  );
  await expect(page.getByLabel("M-PESA phone number")).toBeVisible();
  expect((await readSession(s)).payment_status).toBe("unpaid");
});

test("a shopper who never comes back from PayPal is paid by its webhook", async ({ page }) => {
  const s = seedSession();
  await toPaypal(page, s, "gone@example.com");
  await page.getByRole("button", { name: "Approve and pay" }).click();
  await expect(page.locator("[data-approved=true]")).toBeVisible();
  // Nothing came back through the browser: only PayPal's signed webhook tells Malipo,
  // which captures. The page (opened again later) reads paid.
  await expect
    .poll(async () => (await readSession(s)).payment_status, { timeout: 20_000 })
    .toBe("paid");
  await page.goto(s.path);
  await expect(page.locator("[data-live=paid]")).toBeVisible();
  expect((await readSession(s)).payment).toMatchObject({ rail: "paypal", amount: 1163, currency: "USD" });
});
