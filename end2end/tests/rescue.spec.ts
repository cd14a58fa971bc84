import { expect, test } from "@playwright/test";
import { approveOnHandset, seedSession } from "./support";

// "I paid, but the page didn't notice": the sandbox number 0700 000 406 pays, but its
// callback is lost and M-PESA's query says "still processing" for an hour. The shopper
// types the code from the SMS; Malipo asks M-PESA (Transaction Status) and the page turns
// green. JavaScript on and off. Each test pays its own amount: a second unsettled
// payment from the same number of the same amount would make any check ambiguous
// (refused as "rescue_wait"), and the scripted number is one.

const jsOn = (name: string) => name === "js";

test("a paid-but-unconfirmed payment is rescued with the receipt code", async ({ page }, info) => {
  const s = seedSession({ amount: jsOn(info.project.name) ? 151000 : 152000 });
  await page.goto(s.path);
  await page.getByLabel("M-PESA phone number").fill("0700 000 406");
  await page.getByRole("button", { name: /^Pay KES/ }).click();
  await expect(page.getByText("Check your phone and enter your M-PESA PIN")).toBeVisible();
  const receipt = await approveOnHandset("254700000406", s.reference);

  // The page cannot know: still waiting. The shopper opens "Paid already?".
  await expect(page.locator("[data-live=waiting]")).toBeVisible();
  await page.getByText("Paid already, but this page didn't notice?").click();
  await page.getByLabel(/The code from your M-PESA SMS/).fill(`${receipt} Confirmed. Ksh sent to SANDBOX`);
  await page.getByRole("button", { name: "Check my payment" }).click();

  await expect(page.locator("[data-live=paid]")).toBeVisible({ timeout: 15_000 });
  await expect(page.locator(".receipt")).toHaveText(receipt);
});

test("a code M-PESA does not know is refused, and nothing is paid", async ({ page }, info) => {
  const s = seedSession({ amount: jsOn(info.project.name) ? 153000 : 154000 });
  await page.goto(s.path);
  await page.getByLabel("M-PESA phone number").fill("0700 000 406");
  await page.getByRole("button", { name: /^Pay KES/ }).click();
  await approveOnHandset("254700000406", s.reference);
  await page.getByText("Paid already, but this page didn't notice?").click();
  await page.getByLabel(/The code from your M-PESA SMS/).fill("QZZZZ99999");
  await page.getByRole("button", { name: "Check my payment" }).click();
  // Asked, then refused (a reload shows the answer; without JavaScript the page looks
  // again by itself while M-PESA is asked).
  await expect(async () => {
    await page.reload();
    await expect(page.locator("[data-rescue=refused]")).toBeVisible({ timeout: 1_000 });
  }).toPass({ timeout: 15_000 });
  await expect(page.locator("[data-rescue=refused]")).toContainText("M-PESA has no payment with this code");
  await expect(page.locator("[data-live=paid]")).toBeHidden();
});
