// Drives mindie-router with the official OpenAI Node.js client, as an
// application would: list the models, chat, stream a chat, and meet an
// error. test/e2e/router_test.go runs it and checks what it prints, one JSON
// object on stdout.
//
// Environment: MINDIE_BASE_URL (https://<router>/v1), MINDIE_TOKEN (a bearer
// token the router accepts), NODE_EXTRA_CA_CERTS (the router's CA).
import OpenAI from "openai";

const baseURL = process.env.MINDIE_BASE_URL;
const apiKey = process.env.MINDIE_TOKEN;
if (!baseURL || !apiKey) {
  console.error("MINDIE_BASE_URL and MINDIE_TOKEN are required");
  process.exit(2);
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);
const model = out.models[0];

const chat = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "What is an NPU?" }],
  max_tokens: 12,
});
out.chat = chat.choices[0]?.message?.content ?? "";
out.chatFinish = chat.choices[0]?.finish_reason ?? "";

const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Count to five." }],
  max_tokens: 12,
  stream: true,
});
out.streamChunks = 0;
out.streamText = "";
for await (const chunk of stream) {
  out.streamChunks++;
  out.streamText += chunk.choices[0]?.delta?.content ?? "";
}

// A client whose key the router refuses: the SDK must see an OpenAI-shaped
// 401 and raise its AuthenticationError.
const stranger = new OpenAI({ baseURL, apiKey: "not-a-kubernetes-token", maxRetries: 0 });
try {
  await stranger.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
  out.errorType = "none";
} catch (err) {
  out.errorType = err.constructor.name;
  out.errorStatus = err.status;
  out.errorMessage = err.message;
}

console.log(JSON.stringify(out));
