// Python `re` patterns, for the places where a user's file carries one (lm-evaluation-harness
// task files: the regex filter, exact_match's regexes_to_ignore, the regex_replace template
// filter). Compiled with PCRE2 in UTF + Unicode-property mode, whose syntax is Python's for what
// task files use: (?i)/(?s)/(?m)/(?x) flags, (?P<name>...) and (?P=name), lookahead and
// lookbehind, \d \w \s over Unicode. \Z is translated to PCRE's \z (end of text only, as in
// Python). re.sub / re.findall semantics, empty matches included, are Python 3.7+'s.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace edgerazor::text {

class PythonRegex {
 public:
  explicit PythonRegex(const std::string& pattern);  // throws std::invalid_argument naming it
  const std::string& pattern() const { return pattern_; }
  size_t group_count() const { return groups_; }

  // re.sub(pattern, repl, text, count): \1, \g<1>, \g<name> in repl; count 0 = every match.
  std::string sub(const std::string& repl, const std::string& text, size_t count = 0) const;
  // re.findall: per match, its text when the pattern has no group, else each group's text
  // ("" when a group did not take part), as Python's string or tuple.
  std::vector<std::vector<std::string>> findall(const std::string& text) const;

 private:
  // Calls on_match(ovector) for each match, in Python's order; stops when it returns false.
  template <typename F> void for_each_match(const std::string& text, F&& on_match) const;
  size_t group_index(const std::string& name) const;  // std::string::npos when unknown

  std::string pattern_;
  size_t groups_ = 0;
  std::shared_ptr<void> code_;  // pcre2_code
  std::vector<std::pair<std::string, size_t>> names_;
};

}  // namespace edgerazor::text
