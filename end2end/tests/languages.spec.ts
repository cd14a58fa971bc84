import { expect, test } from "@playwright/test";
import { approveOnHandset, seedSession } from "./support";

// The page in the shopper's language, JavaScript on and off: the switcher's links, the
// live status and a failure's words (from the event stream with JavaScript, from the
// server without), and English nowhere on the page.

const jsOn = (name: string) => name === "js";

/** English the page would show if a text were left untranslated. */
const ENGLISH = [
  "Expires in", "Reference", "Pay with", "Phone number", "Check your phone", "Paid. Thank you",
  "Secured by Malipo", "Send the prompt again", "Nothing was charged", "Waiting for",
];

async function noEnglish(page: import("@playwright/test").Page) {
  const text = await page.locator("body").innerText();
  for (const words of ENGLISH) expect(text, `"${words}" left in English`).not.toContain(words);
}

test("a Swahili shopper pays, and sees every message in Swahili", async ({ page }, info) => {
  const s = seedSession();
  const phone = jsOn(info.project.name) ? "254711000031" : "254711000032";
  // The switcher is plain links: it works with JavaScript off.
  await page.goto(s.path);
  await expect(page.locator("html")).toHaveAttribute("lang", "en");
  await page.getByRole("link", { name: "Kiswahili" }).click();
  await expect(page.locator("html")).toHaveAttribute("lang", "sw");
  if (jsOn(info.project.name)) await expect(page.locator(".live[data-hydrated=true]")).toBeVisible();
  await expect(page.locator(".expiry")).toContainText(/Muda uliobaki: 1[45]:\d\d/);
  await noEnglish(page);

  // Remembered: the same page without `?lang=` still speaks Swahili.
  await page.goto(s.path);
  await expect(page.locator("html")).toHaveAttribute("lang", "sw");
  await page.getByLabel("Nambari ya simu ya M-PESA").fill(`0${phone.slice(3, 6)} ${phone.slice(6, 9)} ${phone.slice(9)}`);
  await page.getByRole("button", { name: "Lipa KES 1,500" }).click();
  await expect(page.getByText("Angalia simu yako na uweke PIN yako ya M-PESA")).toBeVisible();
  await expect(page.locator("[data-live=waiting]")).toContainText("Tumetuma ombi la malipo kwa");
  await noEnglish(page);

  const receipt = await approveOnHandset(phone, s.reference);
  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 10_000 });
  await expect(page.locator("[data-live=paid]")).toContainText("Imelipwa. Asante!");
  await expect(page.locator("[data-live=paid]")).toContainText(`Risiti ya M-PESA: ${receipt}`);
  await noEnglish(page);

  // The receipt, in Swahili too: what was paid, to whom, how and when.
  await page.goto(`${s.path}/receipt`);
  await expect(page.locator("h1")).toHaveText("Risiti ya malipo");
  await expect(page.locator(".receipt-number")).toHaveText(receipt);
  await expect(page.locator(".receipt-lines")).toContainText(s.merchantName);
  await expect(page.locator(".receipt-lines")).toContainText("Nambari ya muamala");
});

test("a refused payment's words come in Swahili", async ({ page }) => {
  const s = seedSession();
  await page.goto(`${s.path}?lang=sw`);
  await page.getByLabel("Nambari ya simu ya M-PESA").fill("0700 002 001");
  await page.getByRole("button", { name: "Lipa KES 1,500" }).click();
  const failed = page.locator("[data-live=failed][data-reason=wrong_pin]");
  await expect(failed).toBeVisible({ timeout: 15_000 });
  await expect(failed).toContainText("PIN ya M-PESA uliyoweka si sahihi.");
  await expect(page.getByRole("button", { name: "Tuma ombi tena" })).toBeVisible();
  await noEnglish(page);
});

test("a number that can't be right is explained in French", async ({ page }) => {
  const s = seedSession();
  await page.goto(`${s.path}?lang=fr`);
  await page.getByLabel("Numéro M-PESA").fill("12");
  // The browser's own check (`required`) passes: the server answers, in French.
  await page.getByRole("button", { name: "Payer KES 1,500" }).click();
  const problem = page.locator("[data-live=failed][data-reason=invalid_phone]");
  await expect(problem).toContainText("Ce numéro ne ressemble pas à un numéro de mobile kényan.");
  await expect(page.locator("html")).toHaveAttribute("lang", "fr");
});

test.describe("the browser's language", () => {
  test.use({ locale: "sw-KE" });
  test("is spoken without asking", async ({ page }) => {
    const s = seedSession();
    await page.goto(s.path);
    await expect(page.locator("html")).toHaveAttribute("lang", "sw");
    await expect(page.getByRole("button", { name: "Lipa KES 1,500" })).toBeVisible();
    await noEnglish(page);
  });
});
