// HFLM (lm_eval/models/huggingface.py, lm_eval/api/model.py, lm_eval/utils.py) over CausalLM.
#include "edgerazor/model/task_model.h"

#include <ATen/ops/cat.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <map>

#include "edgerazor/model/generation.h"
#include "edgerazor/runtime/runtime.h"
#include "edgerazor/text/python_str.h"

namespace edgerazor::model {
namespace {

// lm_eval.utils.get_rolling_token_windows(context_len=1) + make_disjoint_window.
std::vector<TaskLanguageModel::TokenPair> rolling_windows(const std::vector<int64_t>& tokens, int64_t prefix, int64_t max_len) {
  std::vector<TaskLanguageModel::TokenPair> windows;
  if (tokens.empty()) return windows;
  const auto slice = [&](int64_t b, int64_t e) {
    b = std::max<int64_t>(b, 0);
    return std::vector<int64_t>(tokens.begin() + b, tokens.begin() + std::max(b, e));
  };
  const int64_t n = static_cast<int64_t>(tokens.size()), pred_len = max_len;
  const auto disjoint = [&](std::vector<int64_t> a, std::vector<int64_t> b) {
    a.resize(a.size() - (b.size() - 1));
    windows.emplace_back(std::move(a), std::move(b));
  };
  const int64_t first = std::min(max_len, n);
  std::vector<int64_t> a{prefix};
  const auto head = slice(0, first - 1);
  a.insert(a.end(), head.begin(), head.end());
  disjoint(a, slice(0, first));
  int64_t predicted = first;
  while (predicted < n) {
    const int64_t len = std::min(n - predicted, pred_len), end = predicted + len;
    // Python's tokens[end - max_len - 1 : end - 1] with a negative start clamps to 0 only when
    // it is below -n; the windows here always start at >= 0 because predicted >= max_len.
    disjoint(slice(end - max_len - 1, end - 1), slice(end - len, end));
    predicted += len;
  }
  return windows;
}

}  // namespace

TaskLanguageModel::TaskLanguageModel(CausalLMImpl& model, const text::Tokenizer& tokenizer, const TaskModelOptions& options)
    : model_(model), tokenizer_(tokenizer), options_(options) {
  max_length_ = options.max_length > 0 ? options.max_length : model.config.max_position_embeddings;
  if (tokenizer.bos_id()) prefix_token_ = *tokenizer.bos_id();
  else if (tokenizer.eos_id()) prefix_token_ = *tokenizer.eos_id();
  else if (!model.config.eos_token_ids.empty()) prefix_token_ = model.config.eos_token_ids[0];
  add_bos_ = options.add_bos_token.value_or(tokenizer.add_bos_by_default()) && tokenizer.bos_id().has_value();
}

std::vector<int64_t> TaskLanguageModel::encode(const std::string& text) const {
  const std::vector<int32_t> ids = tokenizer_.encode(text);
  std::vector<int64_t> out;
  // tok_encode: no BOS of our own when the text already starts with the prefix token's string.
  const bool starts_with_bos = text.rfind(tokenizer_.id_to_piece(static_cast<int32_t>(prefix_token_)), 0) == 0;
  if (add_bos_ && !starts_with_bos) out.push_back(*tokenizer_.bos_id());
  out.insert(out.end(), ids.begin(), ids.end());
  return out;
}

TaskLanguageModel::TokenPair TaskLanguageModel::encode_pair(const std::string& context_in, const std::string& continuation_in) const {
  if (context_in.empty()) {
    const std::vector<int32_t> ids = tokenizer_.encode(continuation_in);  // add_special_tokens=False
    std::vector<int64_t> cont(ids.begin(), ids.end());
    if (!cont.empty() && cont[0] == prefix_token_) return {{cont[0]}, std::vector<int64_t>(cont.begin() + 1, cont.end())};
    return {{prefix_token_}, cont};
  }
  std::string context = context_in, continuation = continuation_in;
  const size_t keep = text::python_strip(context, false, true).size();  // context.rstrip()
  continuation = context.substr(keep) + continuation;
  context.resize(keep);
  const std::vector<int64_t> whole = encode(context + continuation);
  std::vector<int64_t> ctx = encode(context);
  if (ctx.empty())  // a whitespace-only context and a tokenizer that adds no BOS: nothing to condition on
    throw std::invalid_argument("a context of only whitespace tokenizes to nothing (the tokenizer adds no BOS): '" + context_in + "'");
  const size_t n = std::min(ctx.size(), whole.size());
  return {ctx, std::vector<int64_t>(whole.begin() + static_cast<std::ptrdiff_t>(n), whole.end())};
}

void TaskLanguageModel::score_positions(const at::Tensor& hidden, const std::vector<int64_t>& targets,
                                        const std::vector<size_t>& row_of, std::vector<eval::LoglikelihoodResult>& out) {
  const auto device = hidden.device();
  const int64_t N = hidden.size(0);
  // Chunks of positions keep the (positions, V) log-probabilities small for large vocabularies.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 26) / std::max<int64_t>(1, model_.config.vocab_size));
  std::vector<double> logprob(static_cast<size_t>(N));
  std::vector<uint8_t> greedy(static_cast<size_t>(N));
  for (int64_t begin = 0; begin < N; begin += chunk) {
    const int64_t n = std::min(chunk, N - begin);
    const at::Tensor lp = at::log_softmax(model_.logits_from_hidden(hidden.narrow(0, begin, n).unsqueeze(0)).squeeze(0).to(at::kFloat), -1);
    const at::Tensor t = at::tensor(std::vector<int64_t>(targets.begin() + begin, targets.begin() + begin + n), at::kLong).to(device);
    const at::Tensor picked = lp.gather(1, t.unsqueeze(1)).squeeze(1).to(at::kDouble).cpu();
    const at::Tensor hit = lp.argmax(-1).eq(t).to(at::kByte).cpu();
    std::copy(picked.data_ptr<double>(), picked.data_ptr<double>() + n, logprob.begin() + begin);
    std::copy(hit.data_ptr<uint8_t>(), hit.data_ptr<uint8_t>() + n, greedy.begin() + begin);
  }
  // Float sums in position order, as a per-row torch sum would give.
  std::map<size_t, std::pair<float, bool>> rows;
  for (int64_t i = 0; i < N; ++i) {
    auto& r = rows.try_emplace(row_of[static_cast<size_t>(i)], 0.0f, true).first->second;
    r.first += static_cast<float>(logprob[static_cast<size_t>(i)]);
    r.second = r.second && greedy[static_cast<size_t>(i)];
  }
  for (const auto& [row, r] : rows) out[row] = {static_cast<double>(r.first), r.second};
}

void TaskLanguageModel::score_batch(const std::vector<TokenPair>& pairs, const std::vector<size_t>& rows,
                                    std::vector<eval::LoglikelihoodResult>& out) {
  const auto device = model_.lm_head->weight.device();
  std::vector<std::vector<int64_t>> inputs;
  int64_t width = 0;
  for (size_t r : rows) {
    std::vector<int64_t> all = pairs[r].first;
    all.insert(all.end(), pairs[r].second.begin(), pairs[r].second.end());
    if (static_cast<int64_t>(all.size()) > max_length_ + 1) all.erase(all.begin(), all.end() - (max_length_ + 1));
    all.pop_back();
    width = std::max<int64_t>(width, static_cast<int64_t>(all.size()));
    inputs.push_back(std::move(all));
  }
  at::Tensor ids = at::zeros({static_cast<int64_t>(rows.size()), width}, at::kLong);
  auto acc = ids.accessor<int64_t, 2>();
  for (size_t b = 0; b < rows.size(); ++b)
    for (size_t t = 0; t < inputs[b].size(); ++t) acc[static_cast<int64_t>(b)][static_cast<int64_t>(t)] = inputs[b][t];
  // Right padding behind a causal mask leaves every real position as it is (as lm-eval pads).
  const at::Tensor hidden = model_.model->forward(ids.to(device), ForwardOptions{});  // (B, width, C)
  std::vector<int64_t> flat, targets;
  std::vector<size_t> row_of;
  for (size_t b = 0; b < rows.size(); ++b) {
    const auto& cont = pairs[rows[b]].second;
    const int64_t inplen = static_cast<int64_t>(inputs[b].size()), contlen = std::min<int64_t>(static_cast<int64_t>(cont.size()), inplen);
    for (int64_t t = 0; t < contlen; ++t) {
      flat.push_back(static_cast<int64_t>(b) * width + inplen - contlen + t);
      targets.push_back(cont[cont.size() - static_cast<size_t>(contlen) + static_cast<size_t>(t)]);
      row_of.push_back(rows[b]);
    }
  }
  if (flat.empty()) return;
  const at::Tensor picked = hidden.reshape({-1, hidden.size(-1)}).index_select(0, at::tensor(flat, at::kLong).to(device));
  score_positions(picked, targets, row_of, out);
}

void TaskLanguageModel::score_shared_contexts(const std::vector<TokenPair>& pairs, const std::vector<const std::vector<size_t>*>& groups,
                                              std::vector<eval::LoglikelihoodResult>& out) {
  const auto device = model_.lm_head->weight.device();
  const int64_t G = static_cast<int64_t>(groups.size());
  // 1. Every context once, right-padded: causal attention keeps the padding out of real positions.
  int64_t ctx_width = 0;
  for (const auto* g : groups) ctx_width = std::max<int64_t>(ctx_width, static_cast<int64_t>(pairs[g->front()].first.size()));
  at::Tensor ctx_ids = at::zeros({G, ctx_width}, at::kLong);
  at::Tensor ctx_keep = at::zeros({G, ctx_width}, at::kLong);
  for (int64_t g = 0; g < G; ++g) {
    const auto& ctx = pairs[groups[static_cast<size_t>(g)]->front()].first;
    ctx_ids[g].narrow(0, 0, static_cast<int64_t>(ctx.size())).copy_(at::tensor(ctx, at::kLong));
    ctx_keep[g].narrow(0, 0, static_cast<int64_t>(ctx.size())).fill_(1);
  }
  KVCache prefix;
  ForwardOptions fo;
  fo.cache = &prefix;
  const at::Tensor ctx_hidden = model_.model->forward(ctx_ids.to(device), fo);  // (G, ctx_width, C)

  // 2. Each continuation but its last token, on a copy of its context's cache; the cache's padding
  //    is masked out and positions continue from the context's own length.
  std::vector<int64_t> group_of_row;
  std::vector<size_t> rows;
  int64_t width = 0;
  for (int64_t g = 0; g < G; ++g)
    for (size_t r : *groups[static_cast<size_t>(g)]) {
      rows.push_back(r);
      group_of_row.push_back(g);
      width = std::max<int64_t>(width, static_cast<int64_t>(pairs[r].second.size()) - 1);
    }
  const int64_t R = static_cast<int64_t>(rows.size());
  at::Tensor cont_hidden;
  if (width > 0) {
    at::Tensor ids = at::zeros({R, width}, at::kLong), positions = at::zeros({R, width}, at::kLong);
    auto acc = ids.accessor<int64_t, 2>();
    auto pos = positions.accessor<int64_t, 2>();
    for (int64_t i = 0; i < R; ++i) {
      const auto& [ctx, cont] = pairs[rows[static_cast<size_t>(i)]];
      for (int64_t t = 0; t < width; ++t) {
        if (t + 1 < static_cast<int64_t>(cont.size())) acc[i][t] = cont[static_cast<size_t>(t)];
        pos[i][t] = static_cast<int64_t>(ctx.size()) + t;
      }
    }
    const at::Tensor index = at::tensor(group_of_row, at::kLong).to(device);
    KVCache cache;
    for (size_t l = 0; l < prefix.keys.size(); ++l) {
      cache.keys.push_back(prefix.keys[l].index_select(0, index));
      cache.values.push_back(prefix.values[l].index_select(0, index));
    }
    ForwardOptions co;
    co.cache = &cache;
    co.attention_mask = at::cat({ctx_keep.index_select(0, index.cpu()), at::ones({R, width}, at::kLong)}, 1).to(device);
    co.position_ids = positions.to(device);
    cont_hidden = model_.model->forward(ids.to(device), co);  // (R, width, C)
  }

  // 3. The hidden state before each continuation token: the context's last one, then the
  //    continuation's own.
  std::vector<int64_t> targets;
  std::vector<size_t> row_of;
  const at::Tensor ctx_flat = ctx_hidden.reshape({-1, ctx_hidden.size(-1)});
  std::vector<int64_t> ctx_index, cont_index;
  for (int64_t i = 0; i < R; ++i) {
    const auto& [ctx, cont] = pairs[rows[static_cast<size_t>(i)]];
    ctx_index.push_back(group_of_row[static_cast<size_t>(i)] * ctx_width + static_cast<int64_t>(ctx.size()) - 1);
    for (size_t t = 0; t + 1 < cont.size(); ++t) cont_index.push_back(i * width + static_cast<int64_t>(t));
  }
  const at::Tensor firsts = ctx_flat.index_select(0, at::tensor(ctx_index, at::kLong).to(device));  // (R, C)
  at::Tensor rest;
  if (!cont_index.empty()) rest = cont_hidden.reshape({-1, cont_hidden.size(-1)}).index_select(0, at::tensor(cont_index, at::kLong).to(device));
  // Order: per row, its first position then its others.
  std::vector<int64_t> order;
  int64_t next_rest = R;
  for (int64_t i = 0; i < R; ++i) {
    const auto& cont = pairs[rows[static_cast<size_t>(i)]].second;
    order.push_back(i);
    targets.push_back(cont[0]);
    row_of.push_back(rows[static_cast<size_t>(i)]);
    for (size_t t = 1; t < cont.size(); ++t) {
      order.push_back(next_rest++);
      targets.push_back(cont[t]);
      row_of.push_back(rows[static_cast<size_t>(i)]);
    }
  }
  const at::Tensor all = rest.defined() ? at::cat({firsts, rest}, 0) : firsts;
  score_positions(all.index_select(0, at::tensor(order, at::kLong).to(device)), targets, row_of, out);
}

std::vector<eval::LoglikelihoodResult> TaskLanguageModel::score_tokens(const std::vector<TokenPair>& pairs,
                                                                       const eval::RequestProgress& progress) {
  at::NoGradGuard no_grad;
  const bool was_training = model_.is_training();
  model_.eval();
  std::vector<eval::LoglikelihoodResult> out(pairs.size(), {0.0, true});
  size_t done = 0;
  const auto report = [&](size_t n) {
    done += n;
    if (progress) progress(done, pairs.size());
  };
  // Continuations of one context (the choices of an item) share it, unless truncation applies.
  std::map<std::vector<int64_t>, std::vector<size_t>> by_context;
  std::vector<size_t> plain;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& [ctx, cont] = pairs[i];
    if (cont.empty()) { report(1); continue; }
    const bool fits = static_cast<int64_t>(ctx.size() + cont.size()) <= max_length_ + 1 && !ctx.empty();
    if (options_.share_context && fits) by_context[ctx].push_back(i);
    else plain.push_back(i);
  }
  for (auto it = by_context.begin(); it != by_context.end();) {
    if (it->second.size() < 2) {
      plain.push_back(it->second[0]);
      it = by_context.erase(it);
    } else {
      ++it;
    }
  }
  // Passes of at most batch_size continuations (as lm-eval's batches), each pass holding the
  // contexts its continuations need: a large group (e.g. every rolling first window shares the
  // one-token context [BOS]) is split over passes.
  const size_t per_pass = static_cast<size_t>(std::max<int64_t>(1, options_.batch_size));
  std::vector<std::vector<size_t>> chunks;
  for (const auto& [ctx, rows] : by_context)
    for (size_t begin = 0; begin < rows.size(); begin += per_pass)
      chunks.emplace_back(rows.begin() + static_cast<std::ptrdiff_t>(begin),
                          rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), begin + per_pass)));
  for (size_t c = 0; c < chunks.size();) {
    std::vector<const std::vector<size_t>*> pass;
    size_t rows = 0;
    for (; c < chunks.size() && rows + chunks[c].size() <= per_pass; ++c) {
      pass.push_back(&chunks[c]);
      rows += chunks[c].size();
    }
    if (pass.empty()) pass.push_back(&chunks[c++]), rows = pass.back()->size();
    runtime::adapt_threads();
    score_shared_contexts(pairs, pass, out);
    report(rows);
  }
  // The rest longest first, in batches (as lm-eval's Collator orders them).
  std::stable_sort(plain.begin(), plain.end(), [&](size_t a, size_t b) {
    return pairs[a].first.size() + pairs[a].second.size() > pairs[b].first.size() + pairs[b].second.size();
  });
  for (size_t begin = 0; begin < plain.size(); begin += per_pass) {
    runtime::adapt_threads();
    const std::vector<size_t> rows(plain.begin() + static_cast<std::ptrdiff_t>(begin),
                                   plain.begin() + static_cast<std::ptrdiff_t>(std::min(plain.size(), begin + per_pass)));
    score_batch(pairs, rows, out);
    report(rows.size());
  }
  if (was_training) model_.train();
  return out;
}

std::vector<eval::LoglikelihoodResult> TaskLanguageModel::loglikelihood(const std::vector<eval::LoglikelihoodRequest>& requests,
                                                                        const eval::RequestProgress& progress) {
  std::vector<TokenPair> pairs;
  pairs.reserve(requests.size());
  for (const auto& r : requests) pairs.push_back(encode_pair(r.context, r.continuation));
  return score_tokens(pairs, progress);
}

std::vector<double> TaskLanguageModel::loglikelihood_rolling(const std::vector<std::string>& texts, const eval::RequestProgress& progress) {
  std::vector<TokenPair> windows;
  std::vector<size_t> owner;
  for (size_t i = 0; i < texts.size(); ++i)
    for (auto& w : rolling_windows(encode(texts[i]), prefix_token_, max_length_)) {
      windows.push_back(std::move(w));
      owner.push_back(i);
    }
  const auto scores = score_tokens(windows, progress ? eval::RequestProgress([&](size_t done, size_t total) {
    progress(done * texts.size() / std::max<size_t>(1, total), texts.size());
  }) : eval::RequestProgress());
  std::vector<double> out(texts.size(), 0.0);
  for (size_t w = 0; w < windows.size(); ++w) out[owner[w]] += scores[w].logprob;
  return out;
}

std::vector<std::string> TaskLanguageModel::generate_until(const std::vector<eval::GenerationRequest>& requests,
                                                           const eval::RequestProgress& progress) {
  std::vector<std::string> out(requests.size());
  // HF generate stops at the generation config's EOS ids (the model config's), lm-eval also at the
  // tokenizer's EOS text.
  std::vector<int64_t> stop_ids = model_.config.eos_token_ids;
  if (tokenizer_.eos_id() && std::find(stop_ids.begin(), stop_ids.end(), *tokenizer_.eos_id()) == stop_ids.end())
    stop_ids.push_back(*tokenizer_.eos_id());
  // Tokens skip_special_tokens drops from the decoded text.
  std::vector<int64_t> special = stop_ids;
  for (const auto& id : {tokenizer_.bos_id(), tokenizer_.pad_id()})
    if (id) special.push_back(*id);
  const auto decode = [&](const std::vector<int64_t>& ids) {
    std::vector<int32_t> kept;
    for (int64_t id : ids)
      if (std::find(special.begin(), special.end(), id) == special.end()) kept.push_back(static_cast<int32_t>(id));
    return tokenizer_.decode(kept);
  };
  // s.split(term)[0] for every term = the text before the earliest stop string.
  const auto cut = [](const std::string& s, const std::vector<std::string>& until) {
    size_t length = 0;
    return s.substr(0, find_stop_string(s, until, length));
  };
  const size_t batch = static_cast<size_t>(std::max<int64_t>(1, options_.batch_size));
  size_t done = 0;
  for (size_t begin = 0; begin < requests.size(); begin += batch) {
    const size_t end = std::min(requests.size(), begin + batch);
    std::vector<std::vector<int64_t>> prompts;
    std::vector<GenerationOptions> gen;
    for (size_t i = begin; i < end; ++i) {
      std::vector<int64_t> ids = encode(requests[i].context);
      const int64_t keep = max_length_ - requests[i].max_gen_toks;  // left truncation, as tok_batch_encode
      if (keep < 1) throw std::invalid_argument("generate_until: max_gen_toks " + std::to_string(requests[i].max_gen_toks) +
                                                " leaves no room for a context in the model's " + std::to_string(max_length_) + " positions");
      if (static_cast<int64_t>(ids.size()) > keep) ids.erase(ids.begin(), ids.end() - keep);
      if (ids.empty()) ids.push_back(prefix_token_);
      prompts.push_back(std::move(ids));
      GenerationOptions o;
      o.greedy = true;
      o.max_new_tokens = requests[i].max_gen_toks;
      o.stop_ids = stop_ids;
      gen.push_back(o);
    }
    std::vector<std::vector<int64_t>> produced(end - begin);
    const auto ids = generate_batch(model_, prompts, gen, [&](size_t b, int64_t id) {
      produced[b].push_back(id);
      // Stop once a stop string shows in the decoded text (the part after it is cut anyway).
      size_t length = 0;
      return find_stop_string(decode(produced[b]), requests[begin + b].until, length) == std::string::npos;
    });
    for (size_t b = 0; b < ids.size(); ++b) out[begin + b] = cut(decode(ids[b]), requests[begin + b].until);
    done += end - begin;
    if (progress) progress(done, requests.size());
  }
  return out;
}

}  // namespace edgerazor::model
