// Python `re` semantics on PCRE2 (see the header).
#include "edgerazor/text/python_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

namespace edgerazor::text {
namespace {

std::string pcre_message(int code) {
  PCRE2_UCHAR message[256];
  pcre2_get_error_message(code, message, sizeof(message));
  return reinterpret_cast<const char*>(message);
}

// Python's \Z is the very end of the text, PCRE's \z; everything else task files use is shared.
std::string to_pcre(const std::string& pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      out += '\\';
      out += pattern[i + 1] == 'Z' ? 'z' : pattern[i + 1];
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

}  // namespace

PythonRegex::PythonRegex(const std::string& pattern) : pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  const std::string translated = to_pcre(pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset, nullptr);
  if (!code)
    throw std::invalid_argument("regex '" + pattern + "' does not compile at character " + std::to_string(offset) +
                                ": " + pcre_message(error));
  code_ = std::shared_ptr<void>(code, [](void* c) { pcre2_code_free(static_cast<pcre2_code*>(c)); });
  uint32_t count = 0, name_count = 0, entry_size = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &count);
  pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &name_count);
  pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
  pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
  groups_ = count;
  for (uint32_t i = 0; i < name_count; ++i) {
    const PCRE2_SPTR entry = table + i * entry_size;
    names_.emplace_back(reinterpret_cast<const char*>(entry + 2), static_cast<size_t>((entry[0] << 8) | entry[1]));
  }
}

size_t PythonRegex::group_index(const std::string& name) const {
  if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) return std::stoul(name);
  for (const auto& [n, index] : names_)
    if (n == name) return index;
  return std::string::npos;
}

template <typename F>
void PythonRegex::for_each_match(const std::string& text, F&& on_match) const {
  auto* code = static_cast<pcre2_code*>(code_.get());
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> md(pcre2_match_data_create_from_pattern(code, nullptr),
                                                                    pcre2_match_data_free);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  PCRE2_SIZE start = 0;
  uint32_t options = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), start, options, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      // After an empty match at `start` no non-empty one starts there: go on one character later.
      if (options == 0 || start >= text.size()) return;
      ++start;
      while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
      options = 0;
      continue;
    }
    if (rc < 0) throw std::invalid_argument("regex '" + pattern_ + "': " + pcre_message(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    if (!on_match(ov)) return;
    start = ov[1];
    // Python 3.7+: a match may be empty right after a non-empty one, never twice at one place.
    options = ov[0] == ov[1] ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
  }
}

std::string PythonRegex::sub(const std::string& repl, const std::string& text, size_t count) const {
  std::string out;
  size_t last = 0, done = 0;
  const auto group_text = [&](const PCRE2_SIZE* ov, size_t g) {
    if (g > groups_) throw std::invalid_argument("replacement '" + repl + "': invalid group reference " + std::to_string(g));
    return ov[2 * g] == PCRE2_UNSET ? std::string() : text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
  };
  for_each_match(text, [&](const PCRE2_SIZE* ov) {
    out.append(text, last, ov[0] - last);
    for (size_t i = 0; i < repl.size(); ++i) {
      if (repl[i] != '\\' || i + 1 >= repl.size()) { out += repl[i]; continue; }
      const char n = repl[++i];
      if (n >= '0' && n <= '9') {
        size_t g = static_cast<size_t>(n - '0');
        if (i + 1 < repl.size() && repl[i + 1] >= '0' && repl[i + 1] <= '9') g = g * 10 + static_cast<size_t>(repl[++i] - '0');
        out += group_text(ov, g);
      } else if (n == 'g' && i + 1 < repl.size() && repl[i + 1] == '<') {
        const size_t close = repl.find('>', i);
        if (close == std::string::npos) throw std::invalid_argument("replacement '" + repl + "': unclosed \\g<");
        const std::string name = repl.substr(i + 2, close - i - 2);
        const size_t g = group_index(name);
        if (g == std::string::npos) throw std::invalid_argument("replacement '" + repl + "': unknown group name '" + name + "'");
        out += group_text(ov, g);
        i = close;
      } else if (n == 'n') out += '\n';
      else if (n == 't') out += '\t';
      else if (n == 'r') out += '\r';
      else if (n == '\\') out += '\\';
      else { out += '\\'; out += n; }
    }
    last = ov[1];
    return count == 0 || ++done < count;
  });
  out.append(text, last, std::string::npos);
  return out;
}

std::vector<std::vector<std::string>> PythonRegex::findall(const std::string& text) const {
  std::vector<std::vector<std::string>> matches;
  for_each_match(text, [&](const PCRE2_SIZE* ov) {
    std::vector<std::string> groups;
    if (groups_ == 0) groups.push_back(text.substr(ov[0], ov[1] - ov[0]));
    for (size_t g = 1; g <= groups_; ++g)
      groups.push_back(ov[2 * g] == PCRE2_UNSET ? std::string() : text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]));
    matches.push_back(std::move(groups));
    return true;
  });
  return matches;
}

}  // namespace edgerazor::text
