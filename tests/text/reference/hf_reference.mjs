// Reference outputs from Hugging Face's own JavaScript implementations, for the C++ text tests.
//   node hf_reference.mjs request.json response.json
// request:  {"tokenizer_dir": dir, "encode": [text | {"file": path}], "decode": [[id, ...]],
//            "render": [{"template": str, "context": {...}}]}
// response: {"encode": [[id, ...]], "decode": [text], "render": [text | {"error": message}]}
// Packages come from $EDGERAZOR_NPM_CACHE (default ~/.cache/edgerazor-npm), installed there by
// ensure_node_reference.sh.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const cache = process.env.EDGERAZOR_NPM_CACHE || path.join(os.homedir(), ".cache", "edgerazor-npm");
const require = createRequire(path.join(cache, "noop.js"));
const load = async (name) => {
  const mod = await import(pathToFileURL(require.resolve(name)).href);
  return mod.default && !mod.Tokenizer && !mod.Template ? mod.default : mod;
};

const [requestPath, responsePath] = process.argv.slice(2);
const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
const response = {};

if (request.encode || request.decode) {
  const { Tokenizer } = await load("@huggingface/tokenizers");
  const dir = request.tokenizer_dir;
  const json = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const configPath = path.join(dir, "tokenizer_config.json");
  const config = fs.existsSync(configPath) ? JSON.parse(fs.readFileSync(configPath, "utf8")) : {};
  const tokenizer = new Tokenizer(json, config);
  response.encode = (request.encode || []).map((item) => {
    const text = typeof item === "string" ? item : fs.readFileSync(item.file, "utf8");
    return tokenizer.encode(text, { add_special_tokens: false }).ids;
  });
  // tokenizers.js refuses an empty id list; Hugging Face decodes it to "".
  response.decode = (request.decode || []).map((ids) =>
    ids.length ? tokenizer.decode(ids, { skip_special_tokens: false }) : "");
}

if (request.render) {
  const { Template } = await load("@huggingface/jinja");
  response.render = request.render.map(({ template, context }) => {
    try {
      return new Template(template).render(context);
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
  });
}

fs.writeFileSync(responsePath, JSON.stringify(response));
