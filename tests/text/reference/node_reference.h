// Test helper: runs tests/text/reference/hf_reference.mjs (Hugging Face's JavaScript tokenizer
// and Jinja implementations) on a request and returns its JSON response. Installs the npm
// packages on first use through ensure_node_reference.sh; when that is impossible (no node/npm,
// no registry) it returns nullopt with the reason, and the caller skips with GTEST_SKIP; a
// reference that is installed but fails to run throws.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace edgerazor::text::testing {

inline std::optional<nlohmann::json> run_node_reference(const nlohmann::json& request, std::string& why) {
  if (const char* off = std::getenv("EDGERAZOR_SKIP_NODE_REFERENCE"); off && std::string(off) == "1") {
    why = "EDGERAZOR_SKIP_NODE_REFERENCE=1";
    return std::nullopt;
  }
  const std::string dir = std::string(EDGERAZOR_SOURCE_DIR) + "/tests/text/reference";
  if (std::system(("sh '" + dir + "/ensure_node_reference.sh'").c_str()) != 0) {
    why = "the Node reference (@huggingface/tokenizers, @huggingface/jinja from npm) could not be installed; "
          "see the message above";
    return std::nullopt;
  }
  char work[] = "/tmp/edgerazor-node-ref-XXXXXX";
  if (!mkdtemp(work)) {
    why = "cannot create a temporary folder";
    return std::nullopt;
  }
  const std::string req = std::string(work) + "/request.json", res = std::string(work) + "/response.json";
  std::ofstream(req) << request.dump();
  const int rc = std::system(("node '" + dir + "/hf_reference.mjs' '" + req + "' '" + res + "'").c_str());
  std::ifstream in(res);
  std::stringstream text;
  text << in.rdbuf();
  std::remove(req.c_str());
  std::remove(res.c_str());
  rmdir(work);
  // Installed but failing is a test failure, not a skip.
  if (rc != 0 || text.str().empty())
    throw std::runtime_error("node hf_reference.mjs failed (exit " + std::to_string(rc) + ")");
  return nlohmann::json::parse(text.str());
}

}  // namespace edgerazor::text::testing
