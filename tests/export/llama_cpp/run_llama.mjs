// Runs a GGUF file in llama.cpp (node-llama-cpp, CPU, no downloads) and prints one JSON object.
//   node run_llama.mjs CACHE_DIR MODEL.gguf decode PROMPT_IDS(csv) N        -> {"tokens": [...]}
//   node run_llama.mjs CACHE_DIR MODEL.gguf logits IDS(csv)                  -> {"logits": [[...], ...]} after each id
//   node run_llama.mjs CACHE_DIR MODEL.gguf tokenize TEXT_FILE               -> {"tokens": [...], "text": detokenized}
// Greedy, 1 thread, F32 KV cache (spec/llama-cpp-check.md: the F16 cache flips near-ties).
import {pathToFileURL} from "node:url";
import {readFileSync} from "node:fs";

const [cache, modelPath, mode, arg1, arg2] = process.argv.slice(2);
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(cache + "/node_modules/node-llama-cpp/dist/index.js").href);
const llama = await getLlama({gpu: false, build: "never", skipDownload: true, logLevel: LlamaLogLevel.error, maxThreads: 1});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const ids = (s) => s.split(",").filter((x) => x.length).map(Number);
let out = {};
if (mode === "tokenize") {
  const text = readFileSync(arg1, "utf8");
  const tokens = model.tokenize(text, false);
  out = {tokens: Array.from(tokens), text: model.detokenize(tokens), bos: model.tokens.bos, eos: model.tokens.eos};
} else {
  const ctx = await model.createContext({contextSize: 512, threads: 1, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32"});
  const seq = ctx.getSequence();
  if (mode === "decode") {
    const n = Number(arg2);
    const tokens = [];
    for await (const t of seq.evaluate(ids(arg1), {temperature: 0})) {
      tokens.push(t);
      if (tokens.length >= n) break;
    }
    out = {tokens};
  } else if (mode === "logits") {
    const input = ids(arg1).map((t) => [t, {generateNext: {logits: true}}]);
    const res = await seq.controlledEvaluate(input);
    // next.logits is a Map token -> logit: make it a dense row (every token is present)
    out = {logits: res.map((r) => {
      const row = new Array(r.next.logits.size).fill(null);
      for (const [t, v] of r.next.logits) row[t] = v;
      return row;
    })};
  } else {
    throw new Error("unknown mode " + mode);
  }
}
// exit only once the pipe has taken everything (large logits outputs)
process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
