// JSON parsing for records users write by hand (JSONL data, prompt files): nlohmann keeps the
// last of two equal keys, so {"prompt": "a", "prompt": "b"} would silently lose "a". Header-only
// (nlohmann/json is header-only too). Torch-free.
#pragma once

#include <nlohmann/json.hpp>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgerazor::json_records {

// Thrown for a key repeated inside one object; what() is "key 'NAME' given twice".
class DuplicateKey : public std::runtime_error {
 public:
  explicit DuplicateKey(const std::string& key) : std::runtime_error("key '" + key + "' given twice"), key(key) {}
  std::string key;
};

// nlohmann::json::parse, plus DuplicateKey for a key repeated in any object of the text.
// Json = nlohmann::ordered_json keeps the keys in the order they were written.
template <typename Json = nlohmann::json>
Json parse(const std::string& text) {
  std::vector<std::set<std::string>> open_objects;
  using Event = typename Json::parse_event_t;
  const auto callback = [&open_objects](int /*depth*/, Event event, Json& parsed) {
    if (event == Event::object_start) {
      open_objects.emplace_back();
    } else if (event == Event::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Event::key && !open_objects.empty()) {
      const std::string key = parsed.template get<std::string>();
      if (!open_objects.back().insert(key).second) throw DuplicateKey(key);
    }
    return true;
  };
  return Json::parse(text, callback);
}

}  // namespace edgerazor::json_records
