import { expect, Page, test } from "@playwright/test";
import { readSession, seedSession, Seeded } from "./support";

const base = process.env.MALIPO_E2E_URL ?? "http://127.0.0.1:3000";

// Paying by card through the sandbox card gateway, on its own origin. With JavaScript
// the card is typed into the gateway's frames on the checkout page; without it, onto the
// gateway's own hosted page. Either way Malipo gets the processor's session id only.

/** Types the card where the processor takes it and pays; returns once the shopper is
 *  on the issuer's page (3-D Secure challenge) or back on the checkout page. */
async function payByCard(page: Page, s: Seeded, js: boolean, number: string, expiry = "12/30", cvc = "123") {
  await page.goto(s.path);
  const form = page.locator("form.card-form");
  await form.getByRole("button", { name: "Pay by card · KES 1,500" }).click();
  if (js) {
    // The frames are the gateway's documents: the page cannot read them.
    await page.frameLocator("#card-number iframe").locator("input").fill(number);
    await page.frameLocator("#card-expiry iframe").locator("input").fill(expiry);
    await page.frameLocator("#card-security-code iframe").locator("input").fill(cvc);
    await form.getByRole("button", { name: "Pay KES 1,500" }).click();
  } else {
    // The processor's hosted page, at its origin.
    await expect(page.locator("[data-page=hosted-checkout]")).toBeVisible();
    expect(page.url().startsWith(base)).toBe(false);
    await page.getByLabel("Card number").fill(number);
    await page.getByLabel("Expiry (MM/YY)").fill(expiry);
    await page.getByLabel("Security code").fill(cvc);
    await page.getByRole("button", { name: /^Pay KES 1,500/ }).click();
  }
}

/** On the issuer's page: the code, then back (a button when JavaScript is off). */
async function answerChallenge(page: Page, js: boolean, code: string) {
  await expect(page.locator("[data-page=acs]")).toBeVisible({ timeout: 15_000 });
  await page.getByLabel("Verification code").fill(code);
  await page.getByRole("button", { name: "Verify" }).click();
  if (!js) await page.getByRole("button", { name: "Continue" }).click();
}

test("a card payment turns the page green and the merchant reads it paid", async ({ page }, info) => {
  const js = info.project.name === "js";
  const s = seedSession();
  await payByCard(page, s, js, "4242 4242 4242 4242");
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator(".receipt")).toHaveText("Visa ···· 4242");
  const session = await readSession(s);
  expect(session.payment_status).toBe("paid");
  expect(session.payment).toMatchObject({ rail: "card", amount: 150000, currency: "KES", card: { brand: "VISA", last4: "4242" } });
});

test("a 3-D Secure challenge passed pays", async ({ page }, info) => {
  const js = info.project.name === "js";
  const s = seedSession();
  await payByCard(page, s, js, "4000 0000 0000 3220");
  await answerChallenge(page, js, "1234");
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  expect((await readSession(s)).payment_status).toBe("paid");
});

test("a 3-D Secure challenge failed charges nothing and says why", async ({ page }, info) => {
  const js = info.project.name === "js";
  const s = seedSession();
  await payByCard(page, s, js, "4000 0000 0000 3220");
  await answerChallenge(page, js, "0000");
  await expect(page.locator("[data-live=failed]")).toContainText("Your bank could not confirm it was you", { timeout: 15_000 });
  expect((await readSession(s)).payment_status).toBe("unpaid");
});

test("a declined card reads as declined and the shopper can pay another way", async ({ page }, info) => {
  const js = info.project.name === "js";
  const s = seedSession();
  await payByCard(page, s, js, "4000 0000 0000 0002");
  await expect(page.locator("[data-live=failed]")).toContainText("Your bank declined the card", { timeout: 15_000 });
  await expect(page.getByLabel("M-PESA phone number")).toBeVisible();
  expect((await readSession(s)).payment_status).toBe("unpaid");
});

test("a number failing the Luhn check is refused where it is typed", async ({ page }, info) => {
  const js = info.project.name === "js";
  const s = seedSession();
  await payByCard(page, s, js, "4242 4242 4242 4241");
  if (js) {
    await expect(page.frameLocator("#card-number iframe").locator("#e")).toHaveText("This card number is not valid.");
    await expect(page.locator(".card-problem")).toHaveText("Check the card details above.");
  } else {
    await expect(page.locator("[data-page=hosted-checkout] .err")).toHaveText("Check this field.");
  }
  expect((await readSession(s)).payment_status).toBe("unpaid");
});
