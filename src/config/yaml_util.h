// Private helpers for reading YAML into typed structs with errors that name file:line:column
// and the full key path. yaml-cpp stays out of public headers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edgerazor/core/error.h"

namespace edgerazor::config {
struct Override;  // train_config.h
}

namespace edgerazor::config::yaml {

// A node plus where it lives: the file and its dotted key path ("train.lr", "losses[1].alpha").
struct Located {
  YAML::Node node;
  std::string file;
  std::string path;

  Located child(const std::string& key) const {
    const YAML::Node& parent = node;  // const lookup never inserts
    return {parent[key], file, path.empty() ? key : path + "." + key};
  }
  Located element(size_t i) const {
    const YAML::Node& parent = node;
    return {parent[i], file, path + "[" + std::to_string(i) + "]"};
  }

  [[noreturn]] void fail(const std::string& message) const {
    int line = 0, column = 0;
    if (node.IsDefined()) {
      const auto mark = node.Mark();
      if (mark.line >= 0) {
        line = mark.line + 1;
        column = mark.column + 1;
      }
    }
    throw ConfigError(file, line, column, path, message);
  }
};

inline std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Null: return "null";
    default: return "'" + node.Scalar() + "'";
  }
}

inline void require_map(const Located& at) {
  if (!at.node.IsMap()) at.fail("expected a mapping, got " + describe(at.node));
}

// A mapping key as text. YAML allows a list or mapping as a key ("? [a, b]: 1"); no config key is one.
inline std::string key_name(const Located& at, const YAML::Node& key) {
  if (!key.IsScalar()) {
    const auto mark = key.Mark();
    throw ConfigError(at.file, mark.line + 1, mark.column + 1, at.path,
                      "a key must be a plain name, got " + describe(key));
  }
  return key.Scalar();
}

// Unknown keys are errors: "run.yaml:14:3: train.learning_rat: unknown key (known: ...)".
inline void check_keys(const Located& at, std::initializer_list<const char*> known) {
  require_map(at);
  std::set<std::string> allowed(known.begin(), known.end());
  for (const auto& kv : at.node) {
    const std::string key = key_name(at, kv.first);
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      const auto mark = kv.first.Mark();
      throw ConfigError(at.file, mark.line + 1, mark.column + 1, at.path.empty() ? key : at.path + "." + key,
                        "unknown key (known: " + list + ")");
    }
  }
}

template <typename T>
T as(const Located& at, const char* type_name) {
  if (!at.node.IsScalar()) at.fail(std::string("expected ") + type_name + ", got " + describe(at.node));
  try {
    return at.node.as<T>();
  } catch (const YAML::Exception&) {
    at.fail(std::string("expected ") + type_name + ", got " + describe(at.node));
  }
}

inline double as_double(const Located& at) { return as<double>(at, "a number"); }
inline int64_t as_int(const Located& at) { return as<int64_t>(at, "an integer"); }
inline std::string as_string(const Located& at) {
  if (at.node.IsNull()) return "";
  return as<std::string>(at, "a string");
}
inline bool as_bool(const Located& at) {
  if (!at.node.IsScalar()) at.fail("expected true or false, got " + describe(at.node));
  const std::string s = at.node.Scalar();
  if (s == "true" || s == "True" || s == "TRUE" || s == "yes") return true;
  if (s == "false" || s == "False" || s == "FALSE" || s == "no") return false;
  at.fail("expected true or false, got " + describe(at.node));
}
inline std::vector<std::string> as_string_list(const Located& at) {
  std::vector<std::string> out;
  if (at.node.IsNull()) return out;
  if (!at.node.IsSequence()) at.fail("expected a list of strings, got " + describe(at.node));
  for (size_t i = 0; i < at.node.size(); ++i) out.push_back(as<std::string>(at.element(i), "a string"));
  return out;
}

template <typename T, typename F>
void read_if(const Located& parent, const char* key, T& target, F convert) {
  const Located at = parent.child(key);
  if (at.node.IsDefined()) target = convert(at);
}

// yaml-cpp keeps both entries of a repeated key and lookups see only the first, so
// "lr: 2e-3 ... lr: 5.0" would silently train with 2e-3. Every mapping is checked.
inline void reject_duplicate_keys(const YAML::Node& node, const std::string& file, const std::string& path = "") {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) reject_duplicate_keys(node[i], file, path + "[" + std::to_string(i) + "]");
  } else if (node.IsMap()) {
    std::set<std::string> seen;
    for (const auto& kv : node) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
      const std::string key_path = path.empty() ? key : path + "." + key;
      if (kv.first.IsScalar() && !seen.insert(key).second) {
        const auto mark = kv.first.Mark();
        throw ConfigError(file, mark.line + 1, mark.column + 1, key_path, "key given twice in one mapping");
      }
      reject_duplicate_keys(kv.second, file, key_path);
    }
  }
}

// Parses text with a clear error naming the file and line of a syntax error or repeated key.
inline YAML::Node parse_text(const std::string& text, const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(file, e.mark.line + 1, e.mark.column + 1, "", "YAML syntax error: " + e.msg);
  }
  reject_duplicate_keys(root, file);
  return root;
}

std::string read_file_text(const std::string& path);

// --set KEY=VALUE on a YAML tree: walks "a.b[2].c", creating mappings as needed, and replaces the
// leaf by VALUE parsed as YAML. Throws ConfigError naming "--set KEY=VALUE".
void apply_override(YAML::Node& root, const Override& o);

}  // namespace edgerazor::config::yaml
