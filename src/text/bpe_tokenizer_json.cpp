// BpeTokenizer::from_files: reads tokenizer.json (model, added tokens, normalizer,
// pre-tokenizer, decoder, post-processor) and tokenizer_config.json (special token names,
// add_bos_token, chat_template). Everything malformed is a FormatError naming file and key;
// well-formed but unsupported components are detail::UnsupportedTokenizerError.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bpe_internal.h"

namespace edgerazor::text {
namespace {

using detail::BpeState;
using detail::PreTokenizerStep;
using detail::SplitBehavior;
using detail::UnsupportedTokenizerError;
using Json = nlohmann::json;

// The GPT-2 pattern ByteLevel applies when use_regex is true (tokenizers' byte_level.rs).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError(path, "cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return Json::parse(buffer.str());
  } catch (const Json::parse_error& e) {
    throw FormatError(path, e.byte > 0 ? e.byte - 1 : 0, std::string("invalid JSON: ") + e.what());
  } catch (const Json::out_of_range& e) {  // a number too large for a double
    throw FormatError(path, std::string("invalid JSON: ") + e.what());
  }
}

const Json* member(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

// Whether object[key] is the string `value`. A key of another type (a "type": 24) is no match,
// where json::value() would throw a type_error without the file's name.
bool has_string(const Json& object, const char* key, const char* value) {
  const Json* v = member(object, key);
  return v && *v == value;
}

std::string string_or(const Json& object, const char* key, const std::string& path,
                      const std::string& where, const std::string& fallback = "") {
  const Json* v = member(object, key);
  if (!v) return fallback;
  if (!v->is_string()) throw FormatError(path, where + key + ": expected a string, got " + v->type_name());
  return v->get<std::string>();
}

bool bool_or(const Json& object, const char* key, const std::string& path, const std::string& where,
             bool fallback) {
  const Json* v = member(object, key);
  if (!v) return fallback;
  if (!v->is_boolean()) throw FormatError(path, where + key + ": expected true/false, got " + v->dump());
  return v->get<bool>();
}

// tokenizer_config.json names a special token as "text" or {"content": "text", ...}.
std::string token_name(const Json& config, const char* key, const std::string& path) {
  const Json* v = member(config, key);
  if (!v) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object() && v->contains("content") && (*v)["content"].is_string())
    return (*v)["content"].get<std::string>();
  throw FormatError(path, std::string(key) + ": expected a string or {\"content\": ...}, got " + v->dump());
}

void load_model(BpeState& st, const Json& model, const std::string& path) {
  if (!model.is_object()) throw FormatError(path, "model: expected an object");
  const std::string type = string_or(model, "type", path, "model.", "BPE");
  if (type != "BPE") throw UnsupportedTokenizerError(path, "model.type: " + type + " is not supported (only BPE)");
  if (bool_or(model, "byte_fallback", path, "model.", false))
    throw UnsupportedTokenizerError(path, "model.byte_fallback: SentencePiece-style byte fallback is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!string_or(model, key, path, "model.").empty())
      throw UnsupportedTokenizerError(path, std::string("model.") + key + ": non-empty values are not supported");
  }
  if (const Json* dropout = member(model, "dropout"); dropout && dropout->is_number() && dropout->get<double>() > 0)
    throw UnsupportedTokenizerError(path, "model.dropout: BPE dropout is not supported");
  st.ignore_merges = bool_or(model, "ignore_merges", path, "model.", false);

  const Json* vocab = member(model, "vocab");
  if (!vocab || !vocab->is_object()) throw FormatError(path, "model.vocab: expected an object {token: id}");
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() >= INT32_MAX)
      throw FormatError(path, "model.vocab['" + it.key() + "']: expected an id in [0, 2^31), got " + it->dump());
    max_id = std::max(max_id, it->get<int64_t>());
  }
  // Ids index a table: one stray id of 99999999 among 512 tokens would allocate gigabytes.
  const int64_t id_limit = 2 * static_cast<int64_t>(vocab->size()) + 65536;
  if (max_id >= id_limit)
    for (auto it = vocab->begin(); it != vocab->end(); ++it)
      if (it->get<int64_t>() == max_id)
        throw FormatError(path, "model.vocab['" + it.key() + "']: id " + std::to_string(max_id) + " is far beyond the " +
                                    std::to_string(vocab->size()) + " tokens of the vocabulary (ids must be dense)");
  st.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  std::vector<uint8_t> used(st.tokens.size(), 0);
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const auto id = static_cast<size_t>(it->get<int64_t>());
    if (used[id]) throw FormatError(path, "model.vocab['" + it.key() + "']: id " + std::to_string(id) + " is used twice");
    used[id] = 1;
    st.tokens[id] = it.key();
    st.token_to_id.emplace(it.key(), static_cast<int32_t>(id));
  }
  st.types.assign(st.tokens.size(), TokenType::kNormal);
  for (size_t id = 0; id < used.size(); ++id) {
    if (!used[id]) st.tokens[id] = "[PAD" + std::to_string(id) + "]", st.types[id] = TokenType::kUnused;
  }
  if (std::string unk = string_or(model, "unk_token", path, "model."); !unk.empty()) {
    auto it = st.token_to_id.find(unk);
    if (it == st.token_to_id.end()) throw FormatError(path, "model.unk_token: '" + unk + "' is not in model.vocab");
    st.unk_id = it->second;
    st.types[static_cast<size_t>(it->second)] = TokenType::kUnknown;
  }

  const Json* merges = member(model, "merges");
  if (!merges || !merges->is_array()) throw FormatError(path, "model.merges: expected an array");
  st.merges.reserve(merges->size());
  st.merge_table.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const Json& m = (*merges)[rank];
    const std::string where = "model.merges[" + std::to_string(rank) + "]";
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos) throw FormatError(path, where + ": expected \"left right\", got '" + s + "'");
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      throw FormatError(path, where + ": expected \"left right\" or [left, right], got " + m.dump());
    }
    const auto l = st.token_to_id.find(left), r = st.token_to_id.find(right), lr = st.token_to_id.find(left + right);
    if (l == st.token_to_id.end() || r == st.token_to_id.end() || lr == st.token_to_id.end())
      throw FormatError(path, where + ": '" + left + "', '" + right + "' or their merge is not in model.vocab");
    st.merge_table.insert(l->second, r->second, static_cast<int32_t>(rank), lr->second);
    st.merges.push_back(left + " " + right);
  }
  const auto& alphabet = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(symbol, alphabet[b]);
    auto it = st.token_to_id.find(symbol);
    st.byte_ids[b] = it == st.token_to_id.end() ? -1 : it->second;
  }
}

void load_added_tokens(BpeState& st, const Json& root, const std::string& path) {
  const Json* added = member(root, "added_tokens");
  if (!added) return;
  if (!added->is_array()) throw FormatError(path, "added_tokens: expected an array");
  for (size_t i = 0; i < added->size(); ++i) {
    const Json& t = (*added)[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "].";
    AddedToken token;
    const Json* id = member(t, "id");
    if (!id || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() >= INT32_MAX)
      throw FormatError(path, where + "id: expected an id in [0, 2^31)");
    token.id = static_cast<int32_t>(id->get<int64_t>());
    token.content = string_or(t, "content", path, where);
    if (token.content.empty()) throw FormatError(path, where + "content: expected a non-empty string");
    token.special = bool_or(t, "special", path, where, false);
    token.lstrip = bool_or(t, "lstrip", path, where, false);
    token.rstrip = bool_or(t, "rstrip", path, where, false);
    token.single_word = bool_or(t, "single_word", path, where, false);
    token.normalized = bool_or(t, "normalized", path, where, !token.special);
    st.added.push_back(token);
  }
  for (const AddedToken& t : st.added) {
    const auto id = static_cast<size_t>(t.id);
    if (id >= 2 * st.tokens.size() + st.added.size() + 65536)
      throw FormatError(path, "added_tokens: '" + t.content + "' has id " + std::to_string(id) + ", far beyond the " +
                                  std::to_string(st.tokens.size()) + " tokens of the vocabulary (ids must be dense)");
    if (id >= st.tokens.size()) {
      st.tokens.resize(id + 1), st.types.resize(id + 1, TokenType::kUnused);
      for (size_t k = 0; k < st.tokens.size(); ++k)
        if (st.tokens[k].empty()) st.tokens[k] = "[PAD" + std::to_string(k) + "]";
    }
    st.tokens[id] = t.content;
    st.types[id] = t.special ? TokenType::kControl : TokenType::kUserDefined;
    st.token_to_id[t.content] = t.id;
  }
  st.raw_matcher.build(st.added, false);
  st.normalized_matcher.build(st.added, true);
}

void load_normalizer(BpeState& st, const Json& n, const std::string& path, const std::string& where) {
  if (n.is_null()) return;
  const std::string type = string_or(n, "type", path, where);
  if (type == "Sequence") {
    const Json* list = member(n, "normalizers");
    if (!list || !list->is_array()) throw FormatError(path, where + "normalizers: expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      load_normalizer(st, (*list)[i], path, where + "normalizers[" + std::to_string(i) + "].");
  } else if (type == "NFC") {
    st.normalizers.push_back(NormalizationForm::kNFC);
  } else if (type == "NFD") {
    st.normalizers.push_back(NormalizationForm::kNFD);
  } else if (type == "NFKC") {
    st.normalizers.push_back(NormalizationForm::kNFKC);
  } else if (type == "NFKD") {
    st.normalizers.push_back(NormalizationForm::kNFKD);
  } else {
    throw UnsupportedTokenizerError(path, where + "type: normalizer '" + type + "' is not supported");
  }
}

void load_pre_tokenizer(BpeState& st, const Json& p, const std::string& path, const std::string& where) {
  if (p.is_null()) return;
  const std::string type = string_or(p, "type", path, where);
  if (type == "Sequence") {
    const Json* list = member(p, "pretokenizers");
    if (!list || !list->is_array()) throw FormatError(path, where + "pretokenizers: expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      load_pre_tokenizer(st, (*list)[i], path, where + "pretokenizers[" + std::to_string(i) + "].");
  } else if (type == "Split") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kSplit;
    const Json* pattern = member(p, "pattern");
    std::string text;
    bool literal = false;
    if (pattern && pattern->is_object() && member(*pattern, "Regex")) {
      text = string_or(*pattern, "Regex", path, where + "pattern.");
    } else if (pattern && pattern->is_object() && member(*pattern, "String")) {
      text = string_or(*pattern, "String", path, where + "pattern."), literal = true;
    } else {
      throw FormatError(path, where + "pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    }
    step.regex = detail::compile_pattern(text, literal, path, where + "pattern");
    const std::string behavior = string_or(p, "behavior", path, where, "Isolated");
    if (behavior == "Removed") step.behavior = SplitBehavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = SplitBehavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = SplitBehavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = SplitBehavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = SplitBehavior::kContiguous;
    else throw FormatError(path, where + "behavior: unknown split behaviour '" + behavior + "'");
    step.invert = bool_or(p, "invert", path, where, false);
    st.pre_patterns.push_back(text);
    st.pre_steps.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    step.add_prefix_space = bool_or(p, "add_prefix_space", path, where, true);
    if (bool_or(p, "use_regex", path, where, true)) {
      step.regex = detail::compile_pattern(kGpt2Pattern, false, path, where + "use_regex");
      st.pre_patterns.push_back(kGpt2Pattern);
    }
    st.pre_steps.push_back(std::move(step));
  } else {
    throw UnsupportedTokenizerError(path, where + "type: pre-tokenizer '" + type + "' is not supported");
  }
}

bool has_byte_level(const Json& p) {
  if (!p.is_object()) return false;
  if (has_string(p, "type", "ByteLevel")) return true;
  if (p.contains("pretokenizers") && p["pretokenizers"].is_array())
    for (const Json& q : p["pretokenizers"])
      if (has_byte_level(q)) return true;
  if (p.contains("decoders") && p["decoders"].is_array())
    for (const Json& q : p["decoders"])
      if (has_byte_level(q)) return true;
  return false;
}

// A TemplateProcessing post-processor whose single template starts with the BOS token means
// the model expects BOS (Llama 3 style); used when tokenizer_config.json does not say.
bool post_processor_adds_bos(const Json& root, const std::string& bos) {
  const Json* pp = member(root, "post_processor");
  if (!pp || bos.empty()) return false;
  std::vector<const Json*> processors{pp};
  if (has_string(*pp, "type", "Sequence") && pp->contains("processors") && (*pp)["processors"].is_array())
    for (const Json& q : (*pp)["processors"]) processors.push_back(&q);
  for (const Json* q : processors) {
    if (!has_string(*q, "type", "TemplateProcessing") || !q->contains("single")) continue;
    const Json& single = (*q)["single"];
    if (single.is_array() && !single.empty() && single[0].contains("SpecialToken"))
      return has_string(single[0]["SpecialToken"], "id", bos.c_str());
  }
  return false;
}

void load_config(BpeState& st, const Json& root, const std::string& config_path) {
  Json config = Json::object();
  if (!config_path.empty()) config = read_json(config_path);
  if (!config.is_object()) throw FormatError(config_path, "expected a JSON object");
  st.bos_token = token_name(config, "bos_token", config_path);
  st.eos_token = token_name(config, "eos_token", config_path);
  st.pad_token = token_name(config, "pad_token", config_path);
  const auto find = [&](const std::string& name, const char* key) -> std::optional<int32_t> {
    if (name.empty()) return std::nullopt;
    auto it = st.token_to_id.find(name);
    if (it == st.token_to_id.end())
      throw FormatError(config_path, std::string(key) + ": '" + name + "' is not a token of the vocabulary");
    return it->second;
  };
  st.bos_id = find(st.bos_token, "bos_token");
  st.eos_id = find(st.eos_token, "eos_token");
  st.pad_id = find(st.pad_token, "pad_token");
  if (const Json* add_bos = member(config, "add_bos_token")) {
    if (!add_bos->is_boolean()) throw FormatError(config_path, "add_bos_token: expected true/false");
    st.add_bos = add_bos->get<bool>();
  } else {
    st.add_bos = post_processor_adds_bos(root, st.bos_token);
  }
  if (const Json* tpl = member(config, "chat_template")) {
    if (tpl->is_string()) {
      st.chat_template = tpl->get<std::string>();
    } else if (tpl->is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const Json& t : *tpl)
        if (has_string(t, "name", "default") && t.contains("template") && t["template"].is_string())
          st.chat_template = t["template"].get<std::string>();
    } else {
      throw FormatError(config_path, "chat_template: expected a string or a list of {name, template}");
    }
  }
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_files(const std::string& tokenizer_json,
                                                       const std::string& tokenizer_config_json) {
  const Json root = read_json(tokenizer_json);
  if (!root.is_object()) throw FormatError(tokenizer_json, "expected a JSON object");
  auto st = std::make_unique<State>();
  st->source = tokenizer_json;
  const Json* model = member(root, "model");
  if (!model) throw FormatError(tokenizer_json, "model: missing");
  const Json pre = root.value("pre_tokenizer", Json());
  const Json dec = root.value("decoder", Json());
  if (!has_byte_level(pre) || !has_byte_level(dec))
    throw UnsupportedTokenizerError(tokenizer_json,
                                    "pre_tokenizer/decoder: not a byte-level BPE (no ByteLevel component)");
  load_model(*st, *model, tokenizer_json);
  load_added_tokens(*st, root, tokenizer_json);
  load_normalizer(*st, root.value("normalizer", Json()), tokenizer_json, "normalizer.");
  load_pre_tokenizer(*st, pre, tokenizer_json, "pre_tokenizer.");
  // Each id decodes to the bytes behind its byte-level characters; a token with a character
  // outside the alphabet decodes to its own UTF-8 (tokenizers' ByteLevel::decode_chain).
  st->token_bytes.resize(st->tokens.size());
  st->special.assign(st->tokens.size(), 0);
  for (size_t id = 0; id < st->tokens.size(); ++id) {
    if (st->types[id] == TokenType::kUnused) continue;
    if (!byte_level_to_bytes(st->tokens[id], st->token_bytes[id])) st->token_bytes[id] = st->tokens[id];
  }
  for (const AddedToken& t : st->added) st->special[static_cast<size_t>(t.id)] = t.special ? 1 : 0;
  load_config(*st, root, tokenizer_config_json);
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(st)));
}

}  // namespace edgerazor::text
