// DataConfig validation and shard path/glob resolution.
#include "edgerazor/data/data_config.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "edgerazor/core/error.h"

namespace edgerazor::data {
namespace {

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

[[noreturn]] void fail(const KeyLocator& locate, const std::string& key, const std::string& message) {
  KeyLocation at;
  if (locate) at = locate(key);
  throw ConfigError(at.file, at.line, at.column, key, message);
}

std::vector<std::string> expand(const std::string& pattern) {
  if (!has_glob_chars(pattern)) return is_regular_file(pattern) ? std::vector<std::string>{pattern} : std::vector<std::string>{};
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), GLOB_ERR, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i)
      if (is_regular_file(g.gl_pathv[i])) out.emplace_back(g.gl_pathv[i]);
  ::globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

void validate_sources(const std::vector<DataSource>& sources, const std::string& key, bool check_weight,
                      const KeyLocator& locate) {
  std::set<std::string> names;
  for (size_t i = 0; i < sources.size(); ++i) {
    const DataSource& s = sources[i];
    const std::string k = key + "[" + std::to_string(i) + "]";
    if (!s.name.empty() && !names.insert(s.name).second) fail(locate, k + ".name", "duplicate source name '" + s.name + "'");
    if (check_weight && !(std::isfinite(s.weight) && s.weight > 0))
      fail(locate, k + ".weight", "must be > 0 (got " + std::to_string(s.weight) + ")");
    if (s.paths.empty()) fail(locate, k + ".paths", "at least one shard file or glob is needed");
    for (size_t j = 0; j < s.paths.size(); ++j) {
      if (s.paths[j].empty()) fail(locate, k + ".paths[" + std::to_string(j) + "]", "empty path");
      if (expand(s.paths[j]).empty())
        fail(locate, k + ".paths[" + std::to_string(j) + "]",
             has_glob_chars(s.paths[j]) ? "no file matches '" + s.paths[j] + "'" : "no such file '" + s.paths[j] + "'");
    }
  }
}

}  // namespace

std::vector<std::string> resolve_paths(const DataSource& source, const std::string& key) {
  std::vector<std::string> files;
  std::set<std::string> seen;
  for (size_t j = 0; j < source.paths.size(); ++j) {
    const auto matches = expand(source.paths[j]);
    if (matches.empty())
      throw ConfigError("", 0, 0, key + ".paths[" + std::to_string(j) + "]",
                        has_glob_chars(source.paths[j]) ? "no file matches '" + source.paths[j] + "'"
                                                        : "no such file '" + source.paths[j] + "'");
    for (const auto& m : matches)
      if (seen.insert(m).second) files.push_back(m);
  }
  return files;
}

void validate(const DataConfig& c, const std::string& prefix, const KeyLocator& locate) {
  const std::string p = prefix.empty() ? "" : prefix + ".";
  if (c.sources.empty()) fail(locate, p + "sources", "at least one training source is needed");
  validate_sources(c.sources, p + "sources", true, locate);
  validate_sources(c.eval_sources, p + "eval_sources", false, locate);
  if (c.seq_len < 2 || c.seq_len > (int64_t{1} << 24))
    fail(locate, p + "seq_len", "must be in [2, 16777216] (got " + std::to_string(c.seq_len) + ")");
  if (c.packing != "pack" && c.packing != "pad")
    fail(locate, p + "packing", "must be 'pack' or 'pad' (got '" + c.packing + "')");
  if (c.pad_id < 0 || c.pad_id > 0x7FFFFFFF) fail(locate, p + "pad_id", "must be a token id >= 0 (got " + std::to_string(c.pad_id) + ")");
}

}  // namespace edgerazor::data
