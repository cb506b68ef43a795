// Drives Nexus's Twilio-compatible API with the official `twilio` npm package.
// Pointed at Nexus by one line (client.api.baseUrl); prints one JSON object of results.
const twilio = require("twilio");

const { BASE_URL, ACCOUNT_SID, AUTH_TOKEN, TO, FROM, OPTED_OUT } = process.env;

async function codeOf(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return { code: error.code, status: error.status, moreInfo: error.moreInfo };
  }
}

async function main() {
  const client = twilio(ACCOUNT_SID, AUTH_TOKEN);
  client.api.baseUrl = BASE_URL; // the one-line change

  const created = [];
  for (let i = 0; i < 5; i++) {
    created.push(await client.messages.create({ to: TO, from: FROM, body: `node ${i}` }));
  }
  const fetched = await client.messages(created[0].sid).fetch();

  const first = await client.messages.page({ pageSize: 2 });
  const second = await first.nextPage();
  const all = await client.messages.list({ pageSize: 2 });

  const scheduled = await client.messages.create({
    to: TO,
    messagingServiceSid: "MG" + "1".repeat(32),
    body: "later",
    scheduleType: "fixed",
    sendAt: new Date(Date.now() + 3600 * 1000),
  });
  const canceled = await client.messages(scheduled.sid).update({ status: "canceled" });

  const wrong = twilio(ACCOUNT_SID, "0".repeat(32));
  wrong.api.baseUrl = BASE_URL;

  const result = {
    created: created.map((m) => ({ sid: m.sid, status: m.status, to: m.to, from: m.from })),
    fetched: {
      sid: fetched.sid,
      body: fetched.body,
      numSegments: fetched.numSegments,
      dateCreated: fetched.dateCreated instanceof Date && !isNaN(fetched.dateCreated),
      accountSid: fetched.accountSid,
    },
    firstPage: first.instances.map((m) => m.sid),
    secondPage: second.instances.map((m) => m.sid),
    all: all.map((m) => m.sid),
    scheduled: scheduled.status,
    canceled: canceled.status,
    cancelAgain: await codeOf(client.messages(scheduled.sid).update({ status: "canceled" })),
    invalidTo: await codeOf(client.messages.create({ to: "12", from: FROM, body: "x" })),
    missingBody: await codeOf(client.messages.create({ to: TO, from: FROM, body: "" })),
    optedOut: await codeOf(client.messages.create({ to: OPTED_OUT, from: FROM, body: "x" })),
    badAuth: await codeOf(wrong.messages.create({ to: TO, from: FROM, body: "x" })),
    notFound: await codeOf(client.messages("SM" + "0".repeat(32)).fetch()),
  };
  process.stdout.write(JSON.stringify(result));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
